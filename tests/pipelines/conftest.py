"""Fixtures shared by the pipeline tests."""
import pytest


@pytest.fixture(scope="session")
def taught_policy_dir(tmp_path_factory):
    """The tiny policy taught to answer in the format (``tests.policy_model``), built once per session."""
    import torch

    from tests.policy_model import taught_policy

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model gains nothing from a second thread on a shared machine
    try:
        return taught_policy(tmp_path_factory.mktemp("policy") / "round1")
    finally:
        torch.set_num_threads(threads)
