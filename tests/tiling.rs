//! Tiled PatchCore (`[tiling]`) on generated large images with small defects: tiling must
//! beat resizing to 224 on pixel AUPRO; per-position banks survive save and load; bad tiling
//! input gets an error naming the key or the file, and nothing is written.

use std::path::Path;

use patchcore::core::NoProgress;
use patchcore::data::synthetic::{LargeSpec, generate_large};
use patchcore::data::{MvtecCategory, TilingMode};
use patchcore::eval::{EvaluateOptions, evaluate};
use patchcore::model::config::MetricsResolution;
use patchcore::model::{Config, FittedPatchCore, PatchCore};
use patchcore::sampler::SampleSize;

fn config(mode: TilingMode, tile: u32, stride: u32, ratio: f64) -> Config {
    let mut cfg = Config::default_experiment().unwrap();
    cfg.sampler.set_size(SampleSize::Ratio(ratio)).unwrap();
    cfg.tiling.mode = mode;
    cfg.tiling.tile = tile;
    cfg.tiling.stride = stride;
    cfg.data.metrics_resolution = MetricsResolution::Full;
    cfg
}

fn large(root: &Path, width: u32, height: u32, train: usize) -> MvtecCategory {
    let spec = LargeSpec {
        width,
        height,
        train,
        test_good: 4,
        test_per_defect: 4,
        ..LargeSpec::default()
    };
    generate_large(root, &spec).unwrap();
    MvtecCategory::open(root, &spec.category).unwrap()
}

#[test]
fn tiling_beats_resizing_on_small_defects() {
    let dir = tempfile::tempdir().unwrap();
    large(dir.path(), 1600, 1200, 6);
    let run = |cfg: &Config, out: Option<&Path>| {
        let report = evaluate(
            cfg,
            &EvaluateOptions {
                data_root: dir.path().to_path_buf(),
                categories: vec![],
                output: out.map(Path::to_path_buf),
                quiet: true,
            },
        )
        .unwrap();
        report.categories["synthetic_large"].clone()
    };
    let out = dir.path().join("report_shared");
    // 2 % banks: the exact search of a shared bank costs tiles x bank, which grows with the
    // square of the tiles per image.
    let resize = run(&config(TilingMode::Off, 224, 0, 0.02), None);
    let shared = run(&config(TilingMode::Shared, 224, 0, 0.02), Some(&out));
    let per_pos = run(&config(TilingMode::PerPosition, 224, 0, 0.02), None);
    let aupro = |r: &patchcore::eval::CategoryResult| r.pixel_aupro.unwrap();
    eprintln!(
        "1600x1200, 10-20 px defects: pixel AUPRO resize {:.4}, shared {:.4}, per_position \
         {:.4}; pixel AUROC {:.4} / {:.4} / {:.4}; image AUROC {:.4} / {:.4} / {:.4}",
        aupro(&resize),
        aupro(&shared),
        aupro(&per_pos),
        resize.pixel_auroc.unwrap(),
        shared.pixel_auroc.unwrap(),
        per_pos.pixel_auroc.unwrap(),
        resize.image_auroc,
        shared.image_auroc,
        per_pos.image_auroc,
    );
    assert!(aupro(&shared) > aupro(&resize) + 0.1, "shared vs resize");
    assert!(
        aupro(&per_pos) > aupro(&resize) + 0.1,
        "per_position vs resize"
    );
    // Every pixel of every test image at its own resolution was counted.
    assert_eq!(shared.num_test, 12);
    // 8 x 6 tiles of 224 per 1600x1200 image, 28 x 28 patches each.
    assert_eq!(shared.bank_rows_full, 6 * 48 * 784);
    assert_eq!(per_pos.bank_rows_full, 6 * 48 * 784);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("width=\"448\" height=\"336\""),
        "overlays downscaled for the page"
    );
    // Each downscaled overlay links to its full-resolution file beside the report.
    let link = "<a href=\"overlays/synthetic_large/test_scratch_000_png.jpg\">";
    assert!(html.contains(link), "no link to the full-size overlay");
    let full = image::open(out.join("overlays/synthetic_large/test_scratch_000_png.jpg")).unwrap();
    assert_eq!((full.width(), full.height()), (1600, 1200));
}

#[test]
fn per_position_banks_survive_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let cat = large(dir.path(), 320, 256, 3);
    let model = PatchCore::from_config(&config(TilingMode::PerPosition, 128, 96, 0.05))
        .unwrap()
        .fit(&cat.train, &NoProgress)
        .unwrap();
    // 320 = 0, 96, 192 (shifted last); 256 = 0, 96, 128.
    let rows = model.bank_rows_per_position();
    assert_eq!(rows.len(), 9);
    assert_eq!(model.fitted_image_size(), Some((320, 256)));
    let file = dir.path().join("pp.patchcore");
    model.save(&file).unwrap();
    let loaded = FittedPatchCore::load(&file).unwrap();
    assert_eq!(loaded.bank_rows_per_position(), rows);
    assert_eq!(loaded.bank(), model.bank());
    let test = &cat.test[5].path;
    let (a, b) = (
        model.predict_path(test).unwrap(),
        loaded.predict_path(test).unwrap(),
    );
    assert_eq!(a.score, b.score);
    assert_eq!(a.anomaly_map, b.anomaly_map);
    assert_eq!(a.anomaly_map.dim(), (256, 320));
    // Each position was scored against its own bank: swapping two banks changes the maps.
    let mut banks: Vec<_> = loaded
        .indices()
        .iter()
        .map(|i| {
            let mut b = ndarray::Array2::zeros((i.len(), i.dim()));
            for (r, mut row) in b.rows_mut().into_iter().enumerate() {
                row.assign(&i.row(r));
            }
            b
        })
        .collect();
    banks.swap(0, 8);
    let swapped = loaded
        .unfit()
        .with_banks(
            patchcore::model::BankSet {
                banks,
                image_size: Some((320, 256)),
            },
            model.fitted_on().clone(),
        )
        .unwrap();
    assert_ne!(
        swapped.predict_path(test).unwrap().anomaly_map,
        a.anomaly_map
    );
    // Another size is refused with the fitted size in the message.
    let other = image::RgbImage::new(300, 256);
    let err = model.predict(&other).unwrap_err().to_string();
    assert!(
        err.contains("320x256") && err.contains("per_position"),
        "{err}"
    );
}

#[test]
fn shared_banks_score_any_size_and_stitch_full_maps() {
    let dir = tempfile::tempdir().unwrap();
    let cat = large(dir.path(), 300, 200, 2);
    let model = PatchCore::from_config(&config(TilingMode::Shared, 128, 0, 0.05))
        .unwrap()
        .fit(&cat.train, &NoProgress)
        .unwrap();
    let img = patchcore::data::load_rgb(&cat.test[6].path).unwrap();
    let cropped = image::imageops::crop_imm(&img, 10, 20, 250, 160).to_image();
    let p = model.predict(&cropped).unwrap();
    assert_eq!(p.anomaly_map.dim(), (160, 250));
    assert!(p.anomaly_map.iter().all(|v| v.is_finite() && *v >= 0.0));
    let file = dir.path().join("shared.patchcore");
    model.save(&file).unwrap();
    let loaded = FittedPatchCore::load(&file).unwrap();
    assert_eq!(loaded.predict(&cropped).unwrap(), p);
    let tiny = image::RgbImage::new(100, 300);
    let err = model.predict(&tiny).unwrap_err().to_string();
    assert!(
        err.contains("tiling.tile") && err.contains("100x300"),
        "{err}"
    );
}

#[test]
fn the_tiled_config_in_configs_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiled_effnet_lite0.toml");
    let cfg = Config::from_file(&path).unwrap();
    let t = cfg.tiling.check().unwrap().expect("tiling on");
    assert_eq!(
        (t.mode(), t.tile(), t.stride()),
        (TilingMode::Shared, 224, 224)
    );
}

#[test]
fn bad_tiling_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cat = large(dir.path(), 200, 160, 2);
    // Stride above the tile, zero-size tile, negative stride: config errors naming the key.
    for (set, key) in [
        ("tiling.stride=300", "tiling.stride"),
        ("tiling.tile=8", "tiling.tile"),
        ("tiling.stride=-4", "tiling.stride"),
    ] {
        let over = patchcore::model::config::parse_override(set).unwrap();
        let over2 = patchcore::model::config::parse_override("tiling.mode=\"shared\"").unwrap();
        let err = Config::default_experiment_with(&[over2, over])
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{set}: {err}");
    }
    // A tile larger than the training images: the file and the key are named.
    let big = PatchCore::from_config(&config(TilingMode::Shared, 224, 0, 0.1)).unwrap();
    let err = big.fit(&cat.train, &NoProgress).unwrap_err().to_string();
    assert!(
        err.contains("tiling.tile") && err.contains("000.png"),
        "{err}"
    );
    // Mixed sizes under per_position: the odd file is named.
    let odd = dir.path().join("odd.png");
    image::RgbImage::new(240, 160).save(&odd).unwrap();
    let mut train = cat.train.clone();
    train.push(odd.clone());
    let pp = PatchCore::from_config(&config(TilingMode::PerPosition, 128, 0, 0.1)).unwrap();
    let err = pp.fit(&train, &NoProgress).unwrap_err().to_string();
    assert!(
        err.contains("odd.png") && err.contains("per_position"),
        "{err}"
    );
    // Above the pixel limit: refused from the header, before any extraction.
    let mut cfg = config(TilingMode::Shared, 128, 0, 0.1);
    cfg.data.max_image_pixels = 200 * 160 - 1;
    let err = PatchCore::from_config(&cfg)
        .unwrap()
        .fit(&cat.train, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_image_pixels"), "{err}");
}
