"""The shipped cluster definitions are valid for the Ray version this project pins."""

from __future__ import annotations

import re
import shlex

import ray
import yaml

from search.cli import build_parser, parse_overrides
from search.config import load_experiment
from tests.conftest import REPO

CLUSTER = REPO / "search" / "cluster"


def check_entrypoint(command: str) -> None:
    """The command parses with our CLI and its experiment, with overrides, validates."""
    words = shlex.split(command)
    assert words[0] == "pneumo-search"
    args = build_parser().parse_args(words[1:])
    assert args.command == "run"
    overrides = parse_overrides(args.set or [])
    assert overrides["output_dir"].startswith("/"), "a job needs an absolute output_dir"
    config = load_experiment(REPO / args.experiment, overrides)
    assert config.resources.gpu == 0.5


def test_cluster_launcher_yaml_passes_rays_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((CLUSTER / "aws-gpu.yaml").read_text())
    validate_config(prepare_config(raw))
    assert f"ray{ray.__version__}" in raw["docker"]["image"]
    workers = [
        t for name, t in raw["available_node_types"].items() if name != raw["head_node_type"]
    ]
    assert any(
        t["node_config"]["InstanceType"].startswith(("g5", "g6", "p4", "p5")) for t in workers
    )
    head = " ".join(raw["head_start_ray_commands"])
    assert "RAY_AUTH_MODE=token" in head and "--dashboard-host=127.0.0.1" in head
    assert all("RAY_AUTH_MODE=token" in c for c in raw["worker_start_ray_commands"] if "start" in c)
    submit = re.search(
        r"-- \\\n#\s+(pneumo-search run .*?)\n#\s+(--set .*)\n",
        (CLUSTER / "aws-gpu.yaml").read_text(),
    )
    first_line = submit.group(1).rstrip(" \\")
    check_entrypoint(f"{first_line} {submit.group(2)}")


def test_kuberay_rayjob_manifest_is_complete():
    job = yaml.safe_load((CLUSTER / "rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    check_entrypoint(spec["entrypoint"])
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == ray.__version__
    pods = [cluster["headGroupSpec"]["template"]["spec"]] + [
        group["template"]["spec"] for group in cluster["workerGroupSpecs"]
    ]
    images = {c["image"] for pod in pods for c in pod["containers"]}
    assert len(images) == 1 and f"ray{ray.__version__}" in images.pop()
    for pod in pods:  # every mount has its volume
        volumes = {v["name"] for v in pod["volumes"]}
        for container in pod["containers"]:
            assert {m["name"] for m in container["volumeMounts"]} <= volumes
    gpus = [
        c["resources"]["limits"].get("nvidia.com/gpu")
        for group in cluster["workerGroupSpecs"]
        for c in group["template"]["spec"]["containers"]
    ]
    assert all(gpus)


def test_dockerfile_builds_on_the_pinned_ray():
    text = (CLUSTER / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{ray.__version__}-py311-gpu" in text
    assert "pip install --no-cache-dir -e ." in text
