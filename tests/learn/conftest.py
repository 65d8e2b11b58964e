from tests.learning_fixtures import _one_thread, disc_field, labelled_folder  # noqa: F401 (fixtures)
