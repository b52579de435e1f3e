"""prefect.yaml: every deployment points at a flow that exists, under the name it is deployed as."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_every_deployment_entrypoint_is_a_flow():
    import importlib

    from prefect import Flow

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = {}
    for deployment in spec["deployments"]:
        file, _, attribute = deployment["entrypoint"].partition(":")
        module = importlib.import_module(file.removesuffix(".py").replace("/", "."))
        flow = getattr(module, attribute)
        assert isinstance(flow, Flow), deployment["entrypoint"]
        names[deployment["name"]] = flow.name
        assert deployment["work_pool"]["name"] in {"cpu", "gpu"}
    assert names == {"ratchet-watch": "ratchet-watch", "ratchet-train": "ratchet-train",
                     "ratchet-report": "ratchet-report"}
