import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nanofind.cli import main
from nanofind.datasets import DatasetReader
from nanofind.datasets.labelled import tile_starts
from nanofind.errors import NanofindInputError
from nanofind.learn.data import load_dataset


def test_tile_starts_cover_every_pixel():
    assert tile_starts(512, 512) == [0]
    assert tile_starts(1100, 512) == [0, 512, 588]
    assert tile_starts(300, 256) == [0, 44]


def test_from_labeled_tiles_and_drops_empty_tiles(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (300, 600)).astype(np.uint8)
    mask = np.zeros((300, 600), np.uint8)
    mask[20:60, 30:90] = 255  # only the first column of tiles holds a particle
    Image.fromarray(image).save(images / "img_a.png")
    Image.fromarray(mask).save(masks / "mask_a.png")
    out = tmp_path / "tiles.h5"
    assert main(["dataset", "from-labeled", str(images), str(masks), "-o", str(out), "--tile", "256",
                 "--pixel-size", "0.8"]) == 0
    # rows start at 0 and 44, columns at 0, 256 and 344: the particle lies in the (0, 0) and (44, 0) tiles
    with DatasetReader(out) as r:
        assert len(r) == 2
        for k, row0 in enumerate((0, 44)):
            s = r.sample(k)
            assert s.params["tile_origin_px"] == [row0, 0] and s.params["pixel_size_A"] == 0.8
            np.testing.assert_array_equal(s.image, image[row0:row0 + 256, :256].astype(np.float32))
            np.testing.assert_array_equal(s.mask, (mask[row0:row0 + 256, :256] > 0).astype(np.uint8))
    items = load_dataset(out)
    assert [x.domain for x in items] == ["real", "real"] and items[0].pixel_size_A == 0.8
    # a micrograph without a mask, and one smaller than the tile: one line, exit 2
    Image.fromarray(image).save(images / "img_b.png")
    assert main(["dataset", "from-labeled", str(images), str(masks), "-o", str(tmp_path / "x.h5")]) == 2
    (images / "img_b.png").unlink()
    assert main(["dataset", "from-labeled", str(images), str(masks), "-o", str(tmp_path / "y.h5"),
                 "--tile", "512"]) == 2  # 300 rows < 512
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()


def _save(path, array):
    Image.fromarray(array).save(path)


def test_one_pairing_rule_for_every_name_and_folder_layout(tmp_path):
    from nanofind.datasets.labelled import labelled_pairs
    from nanofind.learn.data import load_folder

    image = np.random.default_rng(0).integers(50, 200, (64, 64)).astype(np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[4:12, 4:12] = 255
    one = tmp_path / "one"
    one.mkdir()
    _save(one / "img_a.png", image)
    _save(one / "mask_a.png", mask)
    (one / "meta_a.json").write_text(json.dumps({"pixel_size": 0.7}))
    _save(one / "b.png", image)
    _save(one / "b_mask.tif", mask)
    _save(one / "c.tif", image)
    _save(one / "c_label.png", mask)
    _save(one / "instance_a.png", mask)  # written by `dataset export`: a label, not a micrograph
    pairs = labelled_pairs(one)
    assert [(p.image.name, p.mask.name) for p in pairs] == [("b.png", "b_mask.tif"), ("c.tif", "c_label.png"),
                                                            ("img_a.png", "mask_a.png")]
    assert [p.meta.name if p.meta else None for p in pairs] == [None, None, "meta_a.json"]
    # training reads folders by the same rule, with the pixel size of meta_<id>.json
    items = load_folder(one)
    assert [Path(x.source).name for x in items] == ["b.png", "c.tif", "img_a.png"]
    assert items[2].pixel_size_A == 0.7 and items[0].mask.sum() == 64
    # a separate masks folder may also hold masks under the image's own name
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    _save(images / "d.png", image)
    _save(masks / "d.png", mask)
    assert [p.mask for p in labelled_pairs(images, masks)] == [masks / "d.png"]
    # in one folder the same stem is the image itself, never its mask
    with pytest.raises(NanofindInputError) as err:
        labelled_pairs(images)
    assert err.value.field == str(images / "d.png") and "d_mask" in err.value.message


def test_masks_of_the_wrong_size_are_named(tmp_path):
    from nanofind.datasets.labelled import read_mask

    path = tmp_path / "m.png"
    _save(path, np.zeros((8, 9), np.uint8))
    with pytest.raises(NanofindInputError) as err:
        read_mask(path, (8, 8))
    assert err.value.field == str(path) and "(8, 9)" in err.value.message
