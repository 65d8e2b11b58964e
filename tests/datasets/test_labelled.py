import numpy as np
from PIL import Image

from nanofind.cli import main
from nanofind.datasets import DatasetReader
from nanofind.datasets.labelled import tile_starts
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
