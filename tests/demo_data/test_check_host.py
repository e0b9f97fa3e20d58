"""``scripts/demo_data/check_host.py``: what `make demo-model` says before it trains."""

from scripts.demo_data.check_host import verdict

HERE = {"device": "cpu", "cpu": "Intel(R) Xeon(R) Processor", "cpu_capability": "AVX512", "threads": 2,
        "torch": "2.14.1+cu130", "packages": {"timm": "1.0.20", "numpy": "2.3.5"}}


def test_same_machine_expects_the_same_bits():
    built = {**HERE, "world": 1}
    assert verdict(built, HERE).endswith("expect the same bits")


def test_another_instruction_set_is_named():
    line = verdict({**HERE, "cpu_capability": "AVX2"}, HERE)
    assert "cpu_capability AVX2 there, AVX512 here" in line and "not the same bits" in line
    assert "torch" not in line.split("(")[1].split(")")[0]  # only what differs is named


def test_another_package_release_is_named():
    line = verdict({**HERE, "packages": {"timm": "1.0.19", "numpy": "2.3.5"}}, HERE)
    assert "timm 1.0.19 there, 1.0.20 here" in line and "numpy" not in line


def test_a_file_without_the_record_says_so():
    assert "does not record" in verdict(None, HERE)


def test_rebuilt_tensors_are_compared_byte_for_byte(tmp_path):
    import torch
    from safetensors.torch import save_file

    from scripts.demo_data.check_host import equal_tensors

    w = torch.linspace(-1, 1, 12).reshape(3, 4)
    save_file({"a": w, "b": torch.zeros(2), "c": torch.ones(2)}, tmp_path / "shipped.safetensors")
    nudged = w.clone()
    nudged[1, 2] = torch.nextafter(nudged[1, 2], torch.tensor(2.0))  # one ulp
    save_file({"a": nudged, "b": -torch.zeros(2), "c": torch.ones(2, dtype=torch.float16)}, tmp_path / "rebuilt.safetensors")
    assert equal_tensors(tmp_path / "shipped.safetensors", tmp_path / "shipped.safetensors") == (3, 3)
    # one ulp, -0.0 against 0.0 (equal as numbers, not as bits) and another dtype all count as different
    assert equal_tensors(tmp_path / "rebuilt.safetensors", tmp_path / "shipped.safetensors") == (0, 3)
