"""The jaxlib-dependent XLA settings (the two CPU traps)."""

import os

import pytest

from mjxgen.runtime import xla


@pytest.mark.parametrize(
    "version, fusion, deadlock",
    [((0, 6, 2), False, False), ((0, 7, 0), True, False), ((0, 9, 2), True, False),
     ((0, 10, 2), True, True), ((0, 12, 0), False, False), ((), False, False)],
)
def test_flags_follow_the_jaxlib_version(version, fusion, deadlock):
    assert xla.needs_fusion_flag(version) is fusion
    assert xla.has_lapack_split_deadlock(version) is deadlock


@pytest.fixture
def x86(monkeypatch):
    """A jaxlib-0.9.2 process on an x86-64 CPU, before JAX's backend exists, with the default settings."""
    monkeypatch.setattr(xla, "jaxlib_version", lambda: (0, 9, 2))
    monkeypatch.setattr(xla, "_backend_initialized", lambda: False)
    monkeypatch.setattr(xla.platform, "machine", lambda: "x86_64")
    monkeypatch.delenv("MJXGEN_DETERMINISTIC", raising=False)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    return monkeypatch


def test_configure_appends_to_user_flags(x86):
    x86.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    xla.configure()
    assert os.environ["XLA_FLAGS"] == f"--xla_dump_to=/tmp/x {xla.FUSION_FLAG} {xla.DETERMINISTIC_FLAG}"
    xla.configure()  # idempotent
    assert os.environ["XLA_FLAGS"].count("fusion_emitters") == 1 and os.environ["XLA_FLAGS"].count("max_isa") == 1


def test_configure_leaves_new_jaxlib_alone(x86):
    # The fusion flag aborts the process on jaxlib versions that don't know it; the ISA cap is known there.
    x86.setattr(xla, "jaxlib_version", lambda: (0, 12, 0))
    xla.configure()
    assert os.environ["XLA_FLAGS"] == xla.DETERMINISTIC_FLAG


@pytest.mark.parametrize("machine, opt_out, user, expected", [
    ("x86_64", None, "", True),
    ("AMD64", None, "", True),
    ("aarch64", None, "", False),  # the cap names x86 ISAs
    ("x86_64", "0", "", False),  # MJXGEN_DETERMINISTIC=0: FMA allowed, rounding depends on the batch shape
    ("x86_64", None, "--xla_cpu_max_isa=AVX512", False),  # the user's own choice stands
])
def test_the_isa_cap_follows_the_machine_and_the_user(x86, machine, opt_out, user, expected):
    x86.setattr(xla.platform, "machine", lambda: machine)
    x86.setattr(xla, "jaxlib_version", lambda: (0, 12, 0))
    if opt_out is not None:
        x86.setenv("MJXGEN_DETERMINISTIC", opt_out)
    if user:
        x86.setenv("XLA_FLAGS", user)
    xla.configure()
    assert os.environ.get("XLA_FLAGS", "").split().count(xla.DETERMINISTIC_FLAG) == int(expected)


def test_configure_warns_when_too_late(monkeypatch):
    monkeypatch.setattr(xla, "jaxlib_version", lambda: (0, 9, 2))
    monkeypatch.setattr(xla, "_backend_initialized", lambda: True)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    with pytest.warns(UserWarning, match=r"Call mjxgen.configure\(\) before any JAX computation"):
        xla.configure()


def test_cpu_safe_batch_stays_under_the_lapack_split():
    # Measured: the 7-dof arm hangs at B=1756 on jaxlib 0.10; a 27-dof model at B>=31.
    assert xla.cpu_safe_batch(7) < 1756
    assert xla.cpu_safe_batch(27) < 31
    for nv in (7, 9, 27):
        assert xla.cpu_safe_batch(nv) * nv**3 / 3 < 200_000
