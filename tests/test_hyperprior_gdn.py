"""The coder's GDN (gencodec.models.gdn) against compressai's, which training and export use: the
same output bit for bit, and a coder that never imports compressai."""

import subprocess
import sys

import pytest
import torch

from gencodec.models.gdn import InferenceGDN


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("channels", [3, 16])
def test_inference_gdn_equals_compressai_bit_for_bit(inverse, channels):
    from compressai.layers import GDN

    g = torch.Generator().manual_seed(channels + inverse)
    ref = GDN(channels, inverse=inverse)
    with torch.no_grad():  # raw parameters on both sides of the reparametrization's floor
        ref.beta.copy_(torch.rand(channels, generator=g) * 2 - 0.5)
        ref.gamma.copy_(torch.rand(channels, channels, generator=g) * 0.6 - 0.1)
    ours = InferenceGDN(channels, inverse=inverse)
    missing, unexpected = ours.load_state_dict(ref.state_dict(), strict=False)
    assert not missing and all("reparam" in k for k in unexpected)
    x = torch.randn(2, channels, 9, 7, generator=g) * 3
    with torch.no_grad():
        want, got = ref(x), ours(x)
        assert torch.equal(want, got)
        xl = x.to(memory_format=torch.channels_last)  # the layout the coder runs in
        assert torch.equal(ref.to(memory_format=torch.channels_last)(xl),
                           ours.to(memory_format=torch.channels_last)(xl))


def test_exported_model_keeps_the_trained_synthesis():
    """Export copies compressai's GDN parameters into the coder's: its g_s restores what the
    trained model's does."""
    from gencodec.models.hyperprior import Hyperprior, HyperpriorConfig

    torch.manual_seed(0)
    model = Hyperprior(HyperpriorConfig(N=8, M=12, hs_ch=8, lambdas=(0.01, 0.05))).eval()
    with torch.no_grad():
        for p in model.g_s.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        exact = model.export()
        ref = Hyperprior(model.cfg).eval()  # the trained g_s as the export stores it (float16 values)
        ref.g_s.load_state_dict({k: v.half().float() for k, v in model.g_s.state_dict().items()})
        ref.g_s.to(memory_format=torch.channels_last)  # the coder's layout
        y = torch.randn(1, 12, 3, 5).contiguous(memory_format=torch.channels_last)
        want = ref.g_s(y)
        assert want.shape == (1, 3, 48, 80)
        assert torch.equal(want, exact.g_s(y))
        assert not torch.equal(want, model.g_s(y))  # the float16 rounding shows: the test can see a change

def test_coding_does_not_import_compressai(tmp_path):
    """compressai's import costs seconds (it imports its datasets and point-cloud transforms): the
    shipped model codes and decodes without it."""
    code = (
        "import sys, numpy as np, gencodec\n"
        "from PIL import Image\n"
        "img = Image.fromarray((np.arange(48 * 40 * 3) % 251).astype('uint8').reshape(48, 40, 3))\n"
        "blob = gencodec.compress(img, codec='hyperprior', quality=3)\n"
        "assert gencodec.decompress(blob).size == (40, 48)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('compressai', 'torch_geometric', 'scipy')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
