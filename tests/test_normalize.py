import pytest
import torch

from dcgan.data.normalize import denormalize, normalize


def test_normalize_is_the_exact_affine_map_to_minus_one_one():
    pixels = torch.arange(256, dtype=torch.uint8)
    normalized = normalize(pixels)
    assert normalized.dtype == torch.float32
    assert normalized[0].item() == -1.0 and normalized[255].item() == 1.0
    exact = torch.arange(256, dtype=torch.float64) / 127.5 - 1.0
    # Every level within float32's resolution at 1.0 (2^-24) of the exact value v / 127.5 - 1.
    assert (normalized.double() - exact).abs().max().item() <= 2 ** -24
    assert torch.equal(normalize(pixels.reshape(4, 1, 8, 8)).flatten(), normalized)  # elementwise, any shape


def test_denormalize_inverts_normalize_exactly():
    pixels = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(denormalize(normalize(pixels)), pixels)


def test_denormalize_clamps_out_of_range_values():
    assert denormalize(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]


def test_normalize_refuses_non_uint8_input():
    with pytest.raises(TypeError, match="uint8"):
        normalize(torch.zeros(3))
