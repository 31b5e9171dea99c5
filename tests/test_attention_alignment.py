"""benchmarks/attention_alignment.py times attention padded to whole tiles against unpadded; its padded
variants must compute the same thing on the real tokens, or the timing compares different work."""
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import attention_alignment  # noqa: E402


@pytest.mark.parametrize("shape", [
    ("causal GQA row", 1, 4, 2, 16, 100, True, "fwd+bwd"),  # keys and queries padded at the end
    ("non-causal", 2, 4, 4, 16, 65, False, "fwd"),  # queries only
])
def test_padding_to_whole_tiles_leaves_the_real_tokens_unchanged(shape):
    rows = attention_alignment.run_shape(shape, 32, None, "cpu", 1)
    (plain, _, _, _, _), (padded, _, _, err, gerr) = rows
    assert "padded to 128" in padded or "padded to 96" in padded
    assert err < 1e-5 and gerr < 1e-5


def test_padding_the_keys_of_non_causal_attention_would_change_it():
    """Why the script pads only the queries of the ViT's attention: a padded key is attended."""
    q, k, v = (torch.randn(1, 2, 65, 8) for _ in range(3))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    pad = (0, 0, 0, 31)
    padded = torch.nn.functional.scaled_dot_product_attention(*(torch.nn.functional.pad(t, pad) for t in (q, k, v)))
    assert not torch.allclose(out, padded[:, :, :65], atol=1e-3)
