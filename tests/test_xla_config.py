"""The jaxlib-dependent XLA settings (the two CPU traps)."""

import pytest

from mjxgen import xla_config


@pytest.mark.parametrize(
    "version, fusion, deadlock",
    [((0, 6, 2), False, False), ((0, 7, 0), True, False), ((0, 9, 2), True, False),
     ((0, 10, 2), True, True), ((0, 12, 0), False, False), ((), False, False)],
)
def test_flags_follow_the_jaxlib_version(version, fusion, deadlock):
    assert xla_config.needs_fusion_flag(version) is fusion
    assert xla_config.has_lapack_split_deadlock(version) is deadlock


def test_configure_appends_to_user_flags(monkeypatch):
    monkeypatch.setattr(xla_config, "jaxlib_version", lambda: (0, 9, 2))
    monkeypatch.setattr(xla_config, "_backend_initialized", lambda: False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    xla_config.configure()
    import os

    assert os.environ["XLA_FLAGS"] == "--xla_dump_to=/tmp/x " + xla_config.FUSION_FLAG
    xla_config.configure()  # idempotent
    assert os.environ["XLA_FLAGS"].count("fusion_emitters") == 1


def test_configure_leaves_new_jaxlib_alone(monkeypatch):
    # The flag aborts the process on jaxlib versions that don't know it.
    monkeypatch.setattr(xla_config, "jaxlib_version", lambda: (0, 12, 0))
    monkeypatch.setattr(xla_config, "_backend_initialized", lambda: False)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    xla_config.configure()
    import os

    assert "XLA_FLAGS" not in os.environ


def test_configure_warns_when_too_late(monkeypatch):
    monkeypatch.setattr(xla_config, "jaxlib_version", lambda: (0, 9, 2))
    monkeypatch.setattr(xla_config, "_backend_initialized", lambda: True)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    with pytest.warns(UserWarning, match=r"Call mjxgen.configure\(\) before any JAX computation"):
        xla_config.configure()


def test_cpu_safe_batch_stays_under_the_lapack_split():
    # Measured: the 7-dof arm hangs at B=1756 on jaxlib 0.10; a 27-dof model at B>=31.
    assert xla_config.cpu_safe_batch(7) < 1756
    assert xla_config.cpu_safe_batch(27) < 31
    for nv in (7, 9, 27):
        assert xla_config.cpu_safe_batch(nv) * nv**3 / 3 < 200_000
