from PIL import Image

from curation.store.versions import Store
from pipelines.audit import connect
from pipelines.report import funnel, main


def test_funnel_and_charts_from_shards(tmp_path, hand_built_tables, capsys):
    store = Store(tmp_path / "mini")
    store.write_version(hand_built_tables, config={})
    got = dict(funnel(connect(store)))
    # 3 examples + 3 rejects in; two validate rejects; one verify-stage reject is not a funnel stage
    assert got["input"] == 6 and got["ingest"] == 6 and got["validate"] == 4 and got["distill"] == 4
    assert (got["rl rows"], got["test rows"], got["sft rows"]) == (2, 1, 1)
    assert main(["--data", str(store.root)]) == 0
    paths = capsys.readouterr().out.split()
    names = sorted(p.rsplit("/", 1)[1] for p in paths)
    assert names == ["funnel.png", "pass_rate.png", "rejects.png", "task_mix.png", "trace_lengths.png"]
    for p in paths:
        with Image.open(p) as im:
            assert im.size[0] > 300 and im.size[1] > 150
