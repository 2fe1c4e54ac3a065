"""What every stage script shares (gistkv.stage): the hub stays off unless the user says otherwise."""

import huggingface_hub.constants as hub_constants

from gistkv.stage import stage_errors


def test_a_stage_stays_off_the_hub_even_when_transformers_was_imported_first(monkeypatch):
    import transformers  # noqa: F401  (as a stage's top-level gistkv imports do)

    # huggingface_hub read the variable at import; unset then, so its constant says "online".
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    with stage_errors():
        assert hub_constants.is_offline_mode()


def test_a_user_who_sets_HF_HUB_OFFLINE_0_gets_the_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with stage_errors():
        assert not hub_constants.is_offline_mode()
