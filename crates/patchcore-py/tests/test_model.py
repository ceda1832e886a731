"""The whole model through Python on MVTec AD bottle: fit, predict, save, load, evaluate."""

import numpy as np
import pytest

import patchcore_rs as pc

CONFIG = {
    "data": {"batch_size": 4},
    "backbone": {"arch": "efficientnet_lite0", "layers": ["blocks.2", "blocks.4"]},
    "sampler": {"kind": "greedy_coreset", "ratio": 0.05},
}


def images(folder, n):
    return sorted(str(p) for p in folder.glob("*.png"))[:n]


@pytest.fixture(scope="module")
def fitted(bottle):
    model = pc.PatchCore.from_config(CONFIG)
    stats = model.fit(images(bottle / "train" / "good", 6))
    return model, stats


def test_fit_reports_the_bank(fitted):
    model, stats = fitted
    assert stats["num_images"] == 6
    assert stats["bank_rows"] == int(np.ceil(0.05 * 6 * 784))
    bank = model.memory_bank
    assert bank.shape == (stats["bank_rows"], stats["feature_dim"]) and bank.dtype == np.float32
    assert model.config["sampler"]["kind"] == "greedy_coreset"


def test_defects_score_above_good_images_and_maps_point_at_them(fitted, bottle):
    model, _ = fitted
    good = [model.predict(p)[0] for p in images(bottle / "test" / "good", 3)]
    bad = [model.predict(p)[0] for p in images(bottle / "test" / "broken_large", 3)]
    assert min(bad) > max(good)
    score, amap = model.predict(images(bottle / "test" / "broken_large", 1)[0])
    assert amap.shape == (224, 224) and amap.dtype == np.float32 and amap.max() > 0


def test_arrays_and_paths_give_the_same_scores(fitted, bottle):
    model, _ = fitted
    path = images(bottle / "test" / "broken_small", 1)[0]
    rgb = pc.load_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (256, 256, 3)
    s_path, m_path = model.predict(path)
    s_arr, m_arr = model.predict(rgb)
    assert s_path == s_arr
    np.testing.assert_array_equal(m_path, m_arr)
    # A Fortran-ordered copy of the same pixels scores the same.
    s_f, _ = model.predict(np.asfortranarray(rgb))
    assert s_f == s_path


def test_save_load_round_trip(fitted, bottle, tmp_path):
    model, _ = fitted
    path = tmp_path / "bottle.patchcore"
    model.save(path)
    loaded = pc.PatchCore.load(str(path))
    test = images(bottle / "test" / "contamination", 2)
    a_scores, a_maps = model.predict_batch(test)
    b_scores, b_maps = loaded.predict_batch(test)
    np.testing.assert_array_equal(a_scores, b_scores)
    np.testing.assert_array_equal(a_maps, b_maps)
    assert a_maps.shape == (2, 224, 224)
    with pytest.raises(OSError):
        pc.PatchCore.load(str(tmp_path / "missing.patchcore"))
    (tmp_path / "bad.patchcore").write_bytes(b"not a model")
    with pytest.raises(pc.PatchcoreError, match="bad.patchcore"):
        pc.PatchCore.load(str(tmp_path / "bad.patchcore"))


def test_fit_on_arrays(bottle):
    rng = np.random.default_rng(0)
    train = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(2)]
    model = pc.PatchCore.from_config(CONFIG)
    stats = model.fit(train)
    assert stats["num_images"] == 2
    score, amap = model.predict(train[0])
    assert np.isfinite(score) and amap.shape == (224, 224)
    with pytest.raises(pc.PatchcoreError):
        model.predict(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(TypeError):
        model.predict(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(pc.PatchcoreError):
        model.fit([])


def test_bad_configs_name_the_key():
    with pytest.raises(pc.PatchcoreError, match="sampler.ratio"):
        pc.PatchCore.from_config({**CONFIG, "sampler": {"kind": "greedy_coreset", "ratio": 2.0}})
    with pytest.raises(pc.PatchcoreError, match="colour"):
        pc.PatchCore.from_config({**CONFIG, "colour": 1})


def test_evaluate_returns_the_report(bottle, tmp_path):
    cfg = {**CONFIG, "data": {"batch_size": 4, "train_limit": 8}}
    report = pc.evaluate(cfg, str(bottle.parent), "bottle", output=str(tmp_path))
    cat = report["categories"]["bottle"]
    assert cat["num_train"] == 8 and cat["num_test"] == 83
    assert cat["image_auroc"] > 0.9 and cat["pixel_auroc"] > 0.9
    assert (tmp_path / "report.json").is_file()


def test_tiled_models_give_full_size_maps_and_keep_their_banks(tmp_path):
    rng = np.random.default_rng(1)
    train = [rng.integers(80, 160, (160, 200, 3), dtype=np.uint8) for _ in range(2)]
    cfg = {**CONFIG, "tiling": {"mode": "per_position", "tile": 96, "stride": 64}}
    model = pc.PatchCore.from_config(cfg)
    stats = model.fit(train)
    assert stats["num_images"] == 2
    test = train[0].copy()
    test[60:75, 90:105] = (250, 20, 20)
    score, amap = model.predict(test)
    assert amap.shape == (160, 200) and amap.dtype == np.float32
    assert np.unravel_index(np.argmax(amap), amap.shape)[0] in range(50, 85)
    scores, maps = model.predict_batch([test, train[1]])
    assert maps.shape == (2, 160, 200) and scores[0] > scores[1]
    path = tmp_path / "tiled.patchcore"
    model.save(path)
    loaded = pc.PatchCore.load(str(path))
    np.testing.assert_array_equal(loaded.predict(test)[1], amap)
    # Per-position banks refuse another size; a tile larger than the image is named.
    with pytest.raises(pc.PatchcoreError, match="200x160"):
        model.predict(np.zeros((150, 200, 3), np.uint8))
    shared = pc.PatchCore.from_config({**CONFIG, "tiling": {"mode": "shared", "tile": 96}})
    shared.fit(train)
    with pytest.raises(pc.PatchcoreError, match="tiling.tile"):
        shared.predict(np.zeros((64, 200, 3), np.uint8))
    with pytest.raises(pc.PatchcoreError, match="image size|one size"):
        shared.predict_batch([test, np.zeros((140, 200, 3), np.uint8)])
