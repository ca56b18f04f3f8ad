"""The Helm chart, checked offline: lint, render, strict schemas, and agreement with the services."""

from __future__ import annotations

import base64
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

from qrt_common.accounts import key_id_of
from qrt_common.settings import Settings
from tests.deployment.test_images_and_skaffold import SPECS, deepest_errors

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "qrt"
KUBE_VERSION = "1.30.0"
CUSTOM_SCHEMAS = {
    "ServiceMonitor": "servicemonitor_v1.json",
    "PrometheusRule": "prometheusrule_v1.json",
    "ScaledObject": "scaledobject_v1alpha1.json",
}
QRT_COMPONENTS = {"gateway", "scheduler", "executor", "device"}
SETTINGS = {f"QRT_{name.upper()}" for name in Settings.model_fields}

VALUES = {
    "default": {},
    "production": yaml.safe_load((CHART / "values-production.yaml").read_text()),
}


@cache
def render(values_name: str) -> tuple[dict[str, Any], ...]:
    with helm_python.Chart.load(str(CHART)) as chart:
        files = chart.render(
            values=VALUES[values_name], name="qrt", namespace="qrt", is_install=True
        )
    return tuple(
        doc
        for path, text in sorted(files.items())
        if path.endswith(".yaml") and text.strip()
        for doc in yaml.safe_load_all(text)
        if doc
    )


def of_kind(values_name: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in render(values_name) if doc["kind"] == kind]


def qrt_workloads(values_name: str) -> list[dict[str, Any]]:
    return [
        doc
        for doc in of_kind(values_name, "Deployment")
        if doc["metadata"]["labels"]["app.kubernetes.io/component"] in QRT_COMPONENTS
    ]


@pytest.mark.parametrize("values_name", VALUES)
def test_the_chart_lints_clean(values_name: str):
    report = helm_python.lint(
        str(CHART), VALUES[values_name], strict=True, kube_version=f"v{KUBE_VERSION}"
    )
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] > 1] == []


@pytest.mark.parametrize("values_name", VALUES)
def test_every_rendered_manifest_is_valid(values_name: str):
    for doc in render(values_name):
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in CUSTOM_SCHEMAS:
            schema = json.loads((SPECS / CUSTOM_SCHEMAS[doc["kind"]]).read_text())
            validator = jsonschema.Draft7Validator(schema)
            problems = [
                e.message for err in validator.iter_errors(doc) for e in deepest_errors(err)
            ]
            assert problems == [], where
        else:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_the_production_values_use_external_services_and_keda():
    kinds = {doc["kind"] for doc in render("production")}
    assert "StatefulSet" not in kinds and "ScaledObject" in kinds
    assert {d["metadata"]["name"] for d in of_kind("default", "StatefulSet")} == {
        "qrt-rabbitmq",
        "qrt-mongodb",
    }


def test_bad_values_are_refused_by_the_values_schema():
    with helm_python.Chart.load(str(CHART)) as chart, pytest.raises(helm_python.HelmValuesError):
        chart.render(values={"gateway": {"port": 0}}, name="qrt", namespace="qrt", is_install=True)
    with helm_python.Chart.load(str(CHART)) as chart, pytest.raises(helm_python.HelmValuesError):
        chart.render(
            values={"mongodb": {"externalUrl": "postgres://x"}}, name="qrt", is_install=True
        )


def test_every_qrt_image_is_one_skaffold_builds():
    skaffold = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    built = {artifact["image"] for artifact in skaffold["build"]["artifacts"]}
    used = {
        container["image"].split(":")[0]
        for doc in qrt_workloads("default")
        for container in doc["spec"]["template"]["spec"]["containers"]
    }
    assert used == built


@pytest.mark.parametrize("values_name", VALUES)
def test_containers_are_locked_down_and_sized(values_name: str):
    for doc in [*qrt_workloads(values_name), *of_kind(values_name, "StatefulSet")]:
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            where = f"{doc['metadata']['name']}/{container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert {"requests", "limits"} <= set(container["resources"]), where
            if doc["kind"] == "Deployment":
                assert context["readOnlyRootFilesystem"] is True, where


@pytest.mark.parametrize("values_name", VALUES)
def test_ports_probes_and_environment_agree_with_the_services(values_name: str):
    for doc in qrt_workloads(values_name):
        for container in doc["spec"]["template"]["spec"]["containers"]:
            where = f"{doc['metadata']['name']}/{container['name']}"
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            unknown = {name for name in env if name.startswith("QRT_")} - SETTINGS
            assert unknown == set(), f"{where} sets variables no service reads: {unknown}"
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                target = container[probe]["httpGet"]
                assert target["port"] in ports, where
                assert target["path"] in ("/healthz", "/readyz"), where
            if container["name"] == "gateway":
                assert int(env["QRT_PORT"]) == ports["http"]
            else:
                assert int(env["QRT_OPS_PORT"]) == ports["ops"]
    services = {d["metadata"]["name"]: d for d in of_kind(values_name, "Service")}
    for doc in qrt_workloads(values_name):
        service = services[doc["metadata"]["name"]]
        named = {
            p["name"] for c in doc["spec"]["template"]["spec"]["containers"] for p in c["ports"]
        }
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= named


def test_the_rules_and_dashboards_shipped_are_the_tested_ones():
    rule = of_kind("default", "PrometheusRule")[0]
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    shipped = {
        name: text
        for doc in of_kind("default", "ConfigMap")
        if "grafana_dashboard" in doc["metadata"]["labels"]
        for name, text in doc["data"].items()
    }
    generated = {p.name: p.read_text() for p in (CHART / "files" / "dashboards").glob("*.json")}
    assert shipped == generated and len(shipped) >= 4


def test_program_pods_and_executors_cannot_reach_the_internet():
    policies = {d["metadata"]["name"]: d["spec"] for d in of_kind("default", "NetworkPolicy")}
    assert policies["qrt-program"]["egress"] == [] and policies["qrt-program"]["ingress"] == []
    for rule in policies["qrt-executor"]["egress"]:
        ports = {p["port"] for p in rule["ports"]}
        # Every egress rule of an executor names its peers, except DNS and the Kubernetes API.
        assert "to" in rule or ports <= {443, 6443}, rule
    assert all(re.fullmatch(r"qrt-[a-z0-9-]+", name) for name in policies)


def test_the_device_reads_the_configuration_and_arguments_the_chart_gives_it(tmp_path: Path):
    from qrt_cli.main import parser
    from qrt_device.config import load_config

    VALUES["custom-device"] = {
        "device": {"config": {"name": "Tuna-5", "calibration": {"interval_seconds": 600}}}
    }
    config_map = next(
        d for d in of_kind("custom-device", "ConfigMap") if "device.toml" in d["data"]
    )
    (tmp_path / "device.toml").write_text(config_map["data"]["device.toml"])
    assert load_config(tmp_path / "device.toml").name == "Tuna-5"
    device = next(
        d for d in qrt_workloads("custom-device") if d["metadata"]["name"] == "qrt-device"
    )
    container = device["spec"]["template"]["spec"]["containers"][0]
    arguments = parser().parse_args(["device", *container["args"]])
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")["mountPath"]
    assert Path(arguments.device_config) == Path(mount) / "device.toml"
    executor = next(
        d for d in qrt_workloads("custom-device") if d["metadata"]["name"] == "qrt-executor"
    )
    env = {
        e["name"]: e.get("value")
        for e in executor["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["QRT_DEVICES"] == "tcp://qrt-device:4203"


def test_program_pods_carry_the_labels_their_network_policy_selects():
    from qrt_executor.kubernetes_jobs import PROGRAM_LABELS

    executor = next(d for d in qrt_workloads("default") if d["metadata"]["name"] == "qrt-executor")
    env = {
        e["name"]: e.get("value")
        for e in executor["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["QRT_ONESHOT_RUNNER"] == "kubernetes"
    assert (
        env["QRT_PROGRAM_IMAGE"] == executor["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    extra = dict(pair.split("=", 1) for pair in env["QRT_PROGRAM_POD_LABELS"].split(","))
    pod_labels = {**extra, **PROGRAM_LABELS}
    policy = next(
        d for d in of_kind("default", "NetworkPolicy") if d["metadata"]["name"] == "qrt-program"
    )
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    role = next(d for d in of_kind("default", "Role") if d["metadata"]["name"] == "qrt-executor")
    granted = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    assert {
        ("jobs", "create"),
        ("configmaps", "create"),
        ("pods/log", "get"),
        ("pods", "list"),
    } <= granted


def gateway_env(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    (gateway,) = [
        d
        for d in docs
        if d["kind"] == "Deployment"
        and d["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
    ]
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") or e.get("valueFrom") for e in container["env"]}


@pytest.mark.parametrize("values_name", VALUES)
def test_the_chart_always_requires_keys_and_generates_the_first_admin_key(values_name: str):
    env = gateway_env(render(values_name))
    assert env["QRT_AUTH"] == "true"
    secrets = {d["metadata"]["name"]: d for d in of_kind(values_name, "Secret")}
    found = {}
    for name, key in (("QRT_KEY_PEPPER", "key-pepper"), ("QRT_BOOTSTRAP_ADMIN_KEY", "admin-key")):
        ref = env[name]["secretKeyRef"]
        assert ref["key"] == key
        found[key] = base64.b64decode(secrets[ref["name"]]["data"][key]).decode()
    assert len(found["key-pepper"]) >= 32
    assert key_id_of(found["admin-key"]) is not None, found["admin-key"]
    # Only the gateway holds them.
    for doc in qrt_workloads(values_name):
        for container in doc["spec"]["template"]["spec"]["containers"]:
            if container["name"] != "gateway":
                names = {e["name"] for e in container.get("env", [])}
                assert not names & {"QRT_KEY_PEPPER", "QRT_BOOTSTRAP_ADMIN_KEY"}


def test_the_operator_s_own_accounts_secret_replaces_the_generated_one():
    with helm_python.Chart.load(str(CHART)) as chart:
        files = chart.render(
            values={"accounts": {"existingSecret": "my-accounts"}},
            name="qrt",
            namespace="qrt",
            is_install=True,
        )
    docs = tuple(
        doc
        for path, text in sorted(files.items())
        if path.endswith(".yaml") and text.strip()
        for doc in yaml.safe_load_all(text)
        if doc
    )
    env = gateway_env(docs)
    assert env["QRT_KEY_PEPPER"]["secretKeyRef"]["name"] == "my-accounts"
    assert env["QRT_BOOTSTRAP_ADMIN_KEY"]["secretKeyRef"]["name"] == "my-accounts"
    labels = [d["metadata"]["labels"].get("app.kubernetes.io/component") for d in docs]
    assert "accounts" not in labels


@pytest.mark.parametrize("values_name", VALUES)
def test_executors_give_job_processes_their_sandbox_settings(values_name: str):
    (executor,) = [d for d in qrt_workloads(values_name) if d["metadata"]["name"] == "qrt-executor"]
    (container,) = executor["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # Job processes in namespaces of their own, under the seccomp profile that allows them.
    assert env["QRT_JOB_SANDBOX"] == "namespaces"
    assert container["securityContext"]["seccompProfile"] == {
        "type": "Localhost",
        "localhostProfile": "qrt-executor.json",
    }
    limits = {name: int(env[name]) for name in env if name.startswith("QRT_JOB_")
              and name != "QRT_JOB_SANDBOX"}  # fmt: skip
    assert limits == {
        "QRT_JOB_MAX_MEMORY_BYTES": 2 << 30,
        "QRT_JOB_MAX_CPU_SECONDS": 3600,
        "QRT_JOB_MAX_PROCESSES": 256,
        "QRT_JOB_MAX_OPEN_FILES": 1024,
        "QRT_JOB_TEMP_BYTES": 256 << 20,
    }


SANDBOX_SYSCALLS = {"unshare", "mount", "mount_setattr", "open_tree", "move_mount",
                    "landlock_create_ruleset", "landlock_restrict_self"}  # fmt: skip
"""What qrt_executor.sandbox and qrt_executor.landlock call to build a job's walls
(RuntimeDefault refuses the mount and namespace calls)."""


def test_the_executor_s_seccomp_profile_allows_the_sandbox_and_refuses_the_rest():
    executor = ROOT / "services" / "executor" / "qrt_executor"
    source = "".join((executor / name).read_text() for name in ("sandbox.py", "landlock.py"))
    called = set(re.findall(r"_libc\.(\w+)\(", source)) | {
        name.removeprefix("SYS_").lower() for name in re.findall(r"syscall\(\s*(SYS_\w+)", source)
    }
    # `setns` is called only where the zygote may create PID namespaces (CAP_SYS_ADMIN), which
    # the chart's executor (uid 10001, no capabilities) may not: its probe's unshare is refused.
    called.discard("setns")
    assert called >= SANDBOX_SYSCALLS, called
    profile = json.loads((CHART / "files" / "seccomp" / "qrt-executor.json").read_text())
    denied = {
        n
        for rule in profile["syscalls"]
        if rule["action"] != "SCMP_ACT_ALLOW"
        for n in rule["names"]
    }
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    assert not (called & denied), called & denied
    # What RuntimeDefault refuses and a job has no use for stays refused.
    assert {"bpf", "keyctl", "ptrace", "setns", "kexec_load", "init_module", "userfaultfd",
            "perf_event_open", "open_by_handle_at", "io_uring_setup"} <= denied  # fmt: skip
    # bubblewrap (the "bubblewrap" one-shot runner) also changes its root.
    assert "pivot_root" not in denied


@pytest.mark.parametrize("values_name", VALUES)
def test_only_the_executor_container_gets_the_service_account_token(values_name: str):
    for doc in qrt_workloads(values_name):
        pod = doc["spec"]["template"]["spec"]
        component = doc["metadata"]["labels"]["app.kubernetes.io/component"]
        if component == "scheduler":  # its Lease: the only container of its pod
            continue
        # No container gets a token by default: a token goes only where it is mounted.
        assert pod["automountServiceAccountToken"] is False, component
        mounted = {
            (c["name"], m["mountPath"])
            for c in pod["containers"]
            for m in c.get("volumeMounts", [])
        }
        tokens = {
            v["name"]
            for v in pod.get("volumes", [])
            for s in v.get("projected", {}).get("sources", [])
            if "serviceAccountToken" in s
        }
        if (
            component == "executor"
            and VALUES[values_name]
            .get("executor", {})
            .get("oneShot", {})
            .get("runner", "kubernetes")
            == "kubernetes"
        ):
            assert tokens == {"kube-api-access"}
            assert ("executor", "/var/run/secrets/kubernetes.io/serviceaccount") in mounted
        else:
            assert tokens == set(), component


RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}  # fmt: skip


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What breaks the Pod Security Standards' "restricted" level (kubernetes.io/docs/concepts/
    security/pod-security-standards, v1.30), for the fields qrt's pods use."""
    problems = []
    for key in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
        if pod.get(key) is True and key != "hostUsers":
            problems.append(key)
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {kinds}")
    pod_context = pod.get("securityContext", {})
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        context = {**pod_context, **container.get("securityContext", {})}
        name = container["name"]
        if context.get("privileged"):
            problems.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation")
        if context.get("runAsNonRoot") is not True or context.get("runAsUser") == 0:
            problems.append(f"{name}: may run as root")
        if context.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile {context.get('seccompProfile')}")
        if context.get("appArmorProfile", {}).get("type") == "Unconfined":
            problems.append(f"{name}: AppArmor unconfined")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []) or set(capabilities.get("add", [])) - {
            "NET_BIND_SERVICE"
        }:
            problems.append(f"{name}: capabilities {capabilities}")
        if context.get("procMount", "Default") != "Default":
            problems.append(f"{name}: procMount")
    return problems


@pytest.mark.parametrize("values_name", VALUES)
def test_qrt_pods_meet_the_restricted_pod_security_standard(values_name: str):
    for doc in qrt_workloads(values_name):
        assert restricted_violations(doc["spec"]["template"]["spec"]) == [], doc["metadata"]["name"]


def test_the_restricted_check_catches_what_it_checks():
    pod = of_kind("default", "Deployment")[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    loose = {**pod, "containers": [{**container, "securityContext": {**container["securityContext"],
             "seccompProfile": {"type": "Unconfined"}, "allowPrivilegeEscalation": True}}]}  # fmt: skip
    assert len(restricted_violations(loose)) == 2


@pytest.mark.parametrize("values_name", VALUES)
def test_every_setting_the_chart_gives_a_service_is_one_it_accepts(values_name: str):
    # Helm prints large numbers as floats (10485760 as "1.048576e+07") unless told otherwise:
    # the gateway refused to start on the chart's own QRT_MAX_REQUEST_BYTES.
    for doc in qrt_workloads(values_name):
        for container in doc["spec"]["template"]["spec"]["containers"]:
            given = {
                e["name"].removeprefix("QRT_").lower(): e["value"]
                for e in container.get("env", [])
                if e["name"].startswith("QRT_") and "value" in e
            }
            Settings(**given)  # raises, naming the setting, on a value the service would refuse


def executor_container(values: dict[str, Any]) -> dict[str, Any]:
    with helm_python.Chart.load(str(CHART)) as chart:
        files = chart.render(values=values, name="qrt", namespace="qrt", is_install=True)
    (executor,) = [
        doc
        for doc in yaml.safe_load_all(files["qrt/templates/executor.yaml"])
        if doc and doc["kind"] == "Deployment"
    ]
    kubernetes_validate.validate(executor, KUBE_VERSION, strict=True)
    container: dict[str, Any] = executor["spec"]["template"]["spec"]["containers"][0]
    return container


def test_the_executor_s_profiles_follow_the_job_sandbox_mode():
    # Off: the pod's RuntimeDefault, no profile of ours to install.
    off = executor_container({"executor": {"jobSandbox": {"mode": "off"}}})
    assert "seccompProfile" not in off["securityContext"]
    assert {"name": "QRT_JOB_SANDBOX", "value": "off"} in off["env"]
    # An AppArmor profile for nodes that have AppArmor, valid where the API has the field.
    apparmor = {"type": "Localhost", "localhostProfile": "qrt-executor"}
    walled = executor_container({"executor": {"jobSandbox": {"appArmorProfile": apparmor}}})
    assert walled["securityContext"]["appArmorProfile"] == apparmor
    assert walled["securityContext"]["seccompProfile"]["type"] == "Localhost"
