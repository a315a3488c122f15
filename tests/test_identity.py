"""A latency table is a fact about one device: profiles record which, commands compare it with
the device they run on, rows of one device never land in another's profile, and a prediction
made with another device's table says so on every surface."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from in_process import run_cli
from mobileprune.devices import HostRunner
from mobileprune.devices.identity import DeviceIdentity, compare, host_identity, legacy_identity
from mobileprune.devices.latency_table import COLUMNS, DeviceProfile, ProfileError, ProfileMeta, ProfileWriter, default_profile_path

TINY = str(Path(__file__).parent / "models" / "tiny.py") + ":make"
OTHER = DeviceIdentity("host", {"cpu": "Imaginary CPU 9000", "arch": "x86_64", "isa": ["avx2", "fma"], "cores": 64,
                                "os": "Linux"})


def test_host_identity_names_the_facts_that_change_kernels():
    me = host_identity()
    assert me.kind == "host" and me.facts["cpu"] and me.facts["arch"] and me.facts["cores"] >= 1
    assert isinstance(me.facts["isa"], list)
    assert me.matches(host_identity()) and not me.differences(host_identity())
    assert me.slug.startswith("host-") and " " not in me.slug
    diff = me.differences(OTHER)
    assert any(d.startswith("cpu: ") for d in diff) and any(d.startswith("cores: ") for d in diff)
    # Same CPU model, other ISA flags (e.g. a VM that hides AVX-512): another device.
    masked = DeviceIdentity("host", {**me.facts, "isa": ["sse4_1"]})
    assert [d.split(":")[0] for d in me.differences(masked)] == (["isa"] if me.facts["isa"] != ["sse4_1"] else [])
    # A fact recorded on one side only is a difference: a profile that never said which CPU
    # generation it measured (a schema-1 profile) is not confirmed as this machine's.
    legacy = legacy_identity(me.facts["cpu"])
    assert not legacy.matches(me)
    assert {d.split(":")[0] for d in legacy.differences(me)} >= {"cpu_id", "isa", "cores"}
    assert "cpu_id: unknown vs " in "; ".join(legacy.differences(me))
    # Unknown on both sides (a fact neither device reports) is not held against either.
    assert DeviceIdentity("host", {**me.facts, "cpu_id": None}).matches(DeviceIdentity("host", {**me.facts, "cpu_id": None}))


def test_two_generations_of_one_cpu_name_get_two_default_profile_paths(tmp_path):
    # VMs call family 25 model 1 and model 17 both "AMD EPYC": one default path for both sent
    # the second machine's `mobileprune profile` to the first one's file, where it was refused.
    facts = {"cpu": "AMD EPYC", "arch": "x86_64", "isa": ["avx2"], "cores": 2}
    milan = DeviceIdentity("host", {**facts, "cpu_id": "family 25 model 1 stepping 1"})
    genoa = DeviceIdentity("host", {**facts, "cpu_id": "family 25 model 17 stepping 1"})
    assert default_profile_path(milan, "executorch", 1, tmp_path).name == "host-amd-epyc-f25m1-executorch-1t.csv"
    assert default_profile_path(milan, "executorch", 1, tmp_path) != default_profile_path(genoa, "executorch", 1, tmp_path)
    # The stepping is not part of the name (nor of what a user tells machines apart by); an
    # unrecorded generation leaves the name as it was.
    assert DeviceIdentity("host", {**facts, "cpu_id": "family 25 model 1 stepping 2"}).slug == milan.slug
    assert legacy_identity("AMD EPYC").slug == "host-amd-epyc"


def test_one_generation_with_other_cpu_flags_gets_its_own_default_profile_path(tmp_path):
    # Seen on 2026-12-03: an Intel VM of family 6 model 207 without AMX and AVX-512 FP16, whose
    # default path was that of the profile shipped for the one with them (refused to extend).
    facts = {"cpu": "Intel(R) Xeon(R) Processor", "cpu_id": "family 6 model 207 stepping 2", "arch": "x86_64",
             "cores": 2}
    with_amx = DeviceIdentity("host", {**facts, "isa": ["avx512f", "amx_tile"]})
    without = DeviceIdentity("host", {**facts, "isa": ["avx512f"]})
    theirs = default_profile_path(with_amx, "executorch", 1, tmp_path)
    assert default_profile_path(without, "executorch", 1, tmp_path) == theirs  # no profile there yet
    meta = ProfileMeta(device="host", cpu=with_amx.name, runtime="executorch", runtime_version="1", threads=1,
                       identity=with_amx.to_dict())
    DeviceProfile(meta, pd.DataFrame(columns=COLUMNS)).save(theirs)
    mine = default_profile_path(without, "executorch", 1, tmp_path)
    assert mine != theirs and mine.name.startswith(with_amx.slug + "-") and mine.name.endswith("-executorch-1t.csv")
    assert default_profile_path(without, "executorch", 1, tmp_path) == mine  # the same on every run here
    assert default_profile_path(with_amx, "executorch", 1, tmp_path) == theirs  # its own device keeps the name


def test_schema_1_profiles_read_with_their_cpu_and_block(tmp_path):
    meta = {"device": "host", "cpu": "Intel(R) Xeon(R) Processor", "runtime": "executorch", "runtime_version": "1",
            "threads": 1, "block": 32, "schema": 1, "block_probe": {"8": 0.1, "16": 0.1}}
    read = ProfileMeta.from_dict(meta)
    assert read.schema == 2 and read.tiles == {"conv": 32, "dwconv": 32}
    assert read.tile_probes == {"conv": {"8": 0.1, "16": 0.1}}
    assert read.device_identity.facts["cpu"] == "Intel(R) Xeon(R) Processor"
    assert read.device_identity.facts["isa"] is None


@pytest.fixture(scope="module")
def foreign(tiny_profile, tmp_path_factory):
    """The tiny model's real profile, relabelled as measured on another device."""
    d = tmp_path_factory.mktemp("foreign")
    meta = ProfileMeta(**{**asdict(tiny_profile.meta), "identity": OTHER.to_dict(), "cpu": OTHER.name})
    DeviceProfile(meta, tiny_profile.table.copy()).save(d / "other.csv")
    return d / "other.csv"


def test_predict_says_when_the_profile_is_of_another_device(foreign, capsys):
    out = run_cli(capsys, "predict", TINY, "--profile", str(foreign), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["device_match"] is False and data["predicted_ms"] > 0
    assert data["profile_device"].startswith("host Imaginary CPU 9000")
    assert data["this_device"] == host_identity().describe()
    assert any(d.startswith("cores: 64 vs") for d in data["differences"])
    assert data["measured_ms"] is None and data["error_pct"] is None
    text = run_cli(capsys, "predict", TINY, "--profile", str(foreign))
    assert text.returncode == 0, text.stderr
    assert "another device" in text.stdout and "Imaginary CPU 9000" in text.stdout
    assert host_identity().facts["cpu"] in text.stdout


def test_predict_on_this_device_matches(tiny_profile, capsys):
    out = run_cli(capsys, "predict", TINY, "--profile", str(tiny_profile.path), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["device_match"] is True and data["differences"] == []


def test_measuring_against_another_devices_profile_is_refused_and_changes_nothing(foreign, capsys):
    """`predict --device host` would append rows measured here (the profile lacks the pruned
    widths' rows here: every dwconv row is dropped) or compare two devices' latencies."""
    table = DeviceProfile.load(foreign).table
    table[~table["key"].str.startswith("dwconv")].to_csv(foreign, index=False)
    before = (foreign.read_bytes(), foreign.with_suffix(".json").read_bytes())
    for extra in ([], ["--measure"]):
        out = run_cli(capsys, "predict", TINY, "--profile", str(foreign), "--device", "host", *extra)
        assert out.returncode == 2, out.stdout + out.stderr
        assert "Imaginary CPU 9000" in out.stderr and host_identity().facts["cpu"] in out.stderr
        assert "mobileprune profile --device host" in out.stderr and "Traceback" not in out.stderr
    assert (foreign.read_bytes(), foreign.with_suffix(".json").read_bytes()) == before


def test_profiling_into_another_devices_profile_is_refused_before_measuring(foreign, tmp_path, capsys):
    before = foreign.read_bytes()
    out = run_cli(capsys, "profile", "--device", "host", "--model", TINY, "--out", foreign, "--repeats", "3",
                  "--block", "8")
    assert out.returncode == 2 and "is a profile of host Imaginary CPU 9000" in out.stderr, out.stderr
    assert "rows measured here are never added" in out.stderr
    assert foreign.read_bytes() == before
    meta = ProfileMeta(**{**asdict(DeviceProfile.load(foreign).meta), "identity": host_identity().to_dict()})
    with pytest.raises(ProfileError, match="Imaginary CPU 9000"):
        ProfileWriter(foreign, meta)


def test_a_profile_whose_cpu_generation_was_not_recorded_is_never_extended_here(tiny_profile, tmp_path, capsys):
    """Two VMs both named "Intel(R) Xeon(R) Processor" can be generations apart: rows measured on
    this one must not join a table that never said which one it was measured on."""
    unrecorded = legacy_identity(host_identity().facts["cpu"])
    meta = ProfileMeta(**{**asdict(tiny_profile.meta), "identity": unrecorded.to_dict()})
    DeviceProfile(meta, tiny_profile.table.copy()).save(tmp_path / "legacy.csv")
    before = (tmp_path / "legacy.csv").read_bytes()
    out = run_cli(capsys, "profile", "--device", "host", "--model", TINY, "--out", tmp_path / "legacy.csv",
                  "--repeats", "3", "--block", "8")
    assert out.returncode == 2 and "cpu_id: unknown vs " in out.stderr, out.stderr
    assert (tmp_path / "legacy.csv").read_bytes() == before
    predicted = run_cli(capsys, "predict", TINY, "--profile", str(tmp_path / "legacy.csv"), "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["device_match"] is False


def test_the_runner_reports_the_identity_profiles_record(tiny_profile):
    assert tiny_profile.meta.device_identity == HostRunner().identity()
    assert compare(tiny_profile.meta.device_identity, host_identity()).matches
