//! Every odd or broken input gets a clear error naming the file and the problem (or, for odd
//! but valid images, is decoded correctly): images, data set layouts, configs. Model files and
//! weights are covered by tests/model_file.rs and the backbone crate's tests.

use std::path::{Path, PathBuf};

use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use patchcore::core::Error;
use patchcore::data::synthetic::{SyntheticSpec, generate};
use patchcore::data::{ImageLimits, MvtecCategory, load_rgb, load_rgb_with};
use patchcore::eval::{EvaluateOptions, evaluate};
use patchcore::model::Config;

fn rgb(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
    })
}

fn png_bytes(img: &RgbImage) -> Vec<u8> {
    let mut b = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut b), image::ImageFormat::Png)
        .unwrap();
    b
}

fn image_err(path: &Path, limits: &ImageLimits) -> String {
    match load_rgb_with(path, limits) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e @ Error::Image { .. }) | Err(e @ Error::Io { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains(&path.display().to_string()),
                "names the file: {m}"
            );
            m
        }
        Err(e) => panic!("wrong error kind for {}: {e}", path.display()),
    }
}

#[test]
fn broken_image_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lim = ImageLimits::default();
    let good = png_bytes(&rgb(64, 64));

    std::fs::write(d.join("zero.png"), b"").unwrap();
    assert!(image_err(&d.join("zero.png"), &lim).contains("empty file"));

    std::fs::write(d.join("truncated.png"), &good[..good.len() / 2]).unwrap();
    let m = image_err(&d.join("truncated.png"), &lim);
    assert!(m.contains("truncated or corrupt"), "{m}");

    let mut jpg = Vec::new();
    rgb(64, 64)
        .write_to(
            &mut std::io::Cursor::new(&mut jpg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let mut corrupt = jpg[..3].to_vec(); // the JPEG signature, then garbage
    corrupt.extend(std::iter::repeat_n(0x5a, 100));
    std::fs::write(d.join("corrupt.jpg"), &corrupt).unwrap();
    image_err(&d.join("corrupt.jpg"), &lim);

    std::fs::write(d.join("text.png"), b"just some text, not an image").unwrap();
    let m = image_err(&d.join("text.png"), &lim);
    assert!(m.contains("not a recognised image format"), "{m}");

    let m = image_err(&d.join("missing.png"), &lim);
    assert!(m.contains("No such file"), "{m}");

    // Too small.
    rgb(16, 40).save(d.join("small.png")).unwrap();
    let m = image_err(&d.join("small.png"), &lim);
    assert!(
        m.contains("16x40") && m.contains("data.min_image_side"),
        "{m}"
    );

    // Huge: a PNG whose header claims 60000 x 60000 pixels is refused before decoding.
    let mut huge = good.clone();
    huge[16..20].copy_from_slice(&60000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&60000u32.to_be_bytes());
    let crc = patchcore_testkit::png_crc32(&huge[12..29]);
    huge[29..33].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(d.join("huge.png"), &huge).unwrap();
    let m = image_err(&d.join("huge.png"), &lim);
    assert!(
        m.contains("60000x60000") && m.contains("before decoding"),
        "{m}"
    );
    // The limit is configurable.
    let tight = ImageLimits {
        max_pixels: 1000,
        min_side: 1,
    };
    std::fs::write(d.join("ok.png"), &good).unwrap();
    let m = image_err(&d.join("ok.png"), &tight);
    assert!(m.contains("data.max_image_pixels"), "{m}");
}

#[test]
fn odd_but_valid_images_decode_to_the_same_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = rgb(48, 80); // non-square
    base.save(d.join("rgb.png")).unwrap();
    let expect = load_rgb(&d.join("rgb.png")).unwrap();
    assert_eq!(expect.dimensions(), (48, 80));

    // RGBA with opaque alpha.
    let rgba: RgbaImage = ImageBuffer::from_fn(48, 80, |x, y| {
        let p = base.get_pixel(x, y).0;
        Rgba([p[0], p[1], p[2], 255])
    });
    rgba.save(d.join("rgba.png")).unwrap();
    assert!(load_rgb(&d.join("rgba.png")).unwrap() == expect, "RGBA");

    // 16-bit RGB: the high byte of each sample is the 8-bit value.
    let wide: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(48, 80, |x, y| {
        let p = base.get_pixel(x, y).0;
        Rgb([p[0] as u16 * 257, p[1] as u16 * 257, p[2] as u16 * 257])
    });
    wide.save(d.join("rgb16.png")).unwrap();
    assert!(
        load_rgb(&d.join("rgb16.png")).unwrap() == expect,
        "16-bit RGB"
    );

    // Grayscale (8- and 16-bit) becomes three equal channels.
    let gray = GrayImage::from_fn(40, 40, |x, y| Luma([((x * 6 + y) % 256) as u8]));
    gray.save(d.join("gray.png")).unwrap();
    let g = load_rgb(&d.join("gray.png")).unwrap();
    assert!(
        g.pixels()
            .zip(gray.pixels())
            .all(|(c, l)| c.0 == [l.0[0]; 3])
    );
    let gray16: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_fn(40, 40, |x, y| Luma([((x * 6 + y) % 256) as u16 * 257]));
    gray16.save(d.join("gray16.png")).unwrap();
    assert!(load_rgb(&d.join("gray16.png")).unwrap() == g, "16-bit gray");

    // A palette PNG (colour type 3), written by hand: 2 colours, 32 x 32, left half red.
    let palette = indexed_png(32, 32, &[[255, 0, 0], [0, 0, 255]], |x, _| {
        u8::from(x >= 16)
    });
    std::fs::write(d.join("palette.png"), palette).unwrap();
    let p = load_rgb(&d.join("palette.png")).unwrap();
    assert_eq!(p.get_pixel(3, 5).0, [255, 0, 0]);
    assert_eq!(p.get_pixel(20, 5).0, [0, 0, 255]);
}

/// A minimal 8-bit indexed PNG with stored (uncompressed) deflate blocks.
fn indexed_png(w: u32, h: u32, colours: &[[u8; 3]], px: impl Fn(u32, u32) -> u8) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend(data);
        out.extend(&c);
        out.extend(patchcore_testkit::png_crc32(&c).to_be_bytes());
    }
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0u8); // filter: none
        raw.extend((0..w).map(|x| px(x, y)));
    }
    // zlib: header, one stored block, Adler-32.
    let mut z = vec![0x78, 0x01, 0x01];
    z.extend((raw.len() as u16).to_le_bytes());
    z.extend((!(raw.len() as u16)).to_le_bytes());
    z.extend(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &v in &raw {
        a = (a + v as u32) % 65521;
        b = (b + a) % 65521;
    }
    z.extend(((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 3, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"PLTE", &colours.concat());
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn small_dataset() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec {
        train: 3,
        test_good: 2,
        test_per_defect: 2,
        ..Default::default()
    };
    generate(dir.path(), &spec).unwrap();
    let cat = dir.path().join(&spec.category);
    (dir, cat)
}

fn dataset_err(root: &Path, name: &str) -> String {
    match MvtecCategory::open(root, name) {
        Ok(_) => panic!("layout accepted"),
        Err(e @ Error::Dataset { .. }) => e.to_string(),
        Err(e) => panic!("wrong error kind: {e}"),
    }
}

#[test]
fn bad_data_set_layouts_are_named() {
    let (dir, cat) = small_dataset();
    let name = cat.file_name().unwrap().to_string_lossy().into_owned();
    let root = dir.path();
    assert!(MvtecCategory::open(root, &name).is_ok());

    // A non-image file in a data folder is skipped (with a warning), not decoded.
    std::fs::write(cat.join("train/good/notes.txt"), "hello").unwrap();
    assert_eq!(MvtecCategory::open(root, &name).unwrap().train.len(), 3);

    // Duplicate stems.
    let first = std::fs::read_dir(cat.join("train/good"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .unwrap();
    let twin = first.with_extension("jpg");
    std::fs::copy(&first, &twin).unwrap();
    let m = dataset_err(root, &name);
    assert!(m.contains("share the stem"), "{m}");
    std::fs::remove_file(&twin).unwrap();

    // Masks for good images.
    std::fs::create_dir_all(cat.join("ground_truth/good")).unwrap();
    rgb(64, 64)
        .save(cat.join("ground_truth/good/000_mask.png"))
        .unwrap();
    let m = dataset_err(root, &name);
    assert!(m.contains("ground_truth/good") || m.contains("good"), "{m}");
    std::fs::remove_dir_all(cat.join("ground_truth/good")).unwrap();

    // Empty and missing train/good.
    let train = cat.join("train/good");
    let moved = cat.join("train/moved");
    std::fs::rename(&train, &moved).unwrap();
    std::fs::create_dir_all(&train).unwrap();
    let m = dataset_err(root, &name);
    assert!(m.contains("no training images"), "{m}");
    std::fs::remove_dir_all(&train).unwrap();
    let m = dataset_err(root, &name);
    assert!(m.contains("missing train/good"), "{m}");
    std::fs::rename(&moved, &train).unwrap();

    // A mask of another size than its image: evaluation stops and names the mask.
    let gt = std::fs::read_dir(cat.join("ground_truth"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .unwrap();
    let mask = std::fs::read_dir(&gt)
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .unwrap();
    GrayImage::new(50, 70).save(&mask).unwrap();
    let cfg = Config::from_toml_str(
        "[backbone]\narch = \"efficientnet_lite0\"\nlayers = [\"blocks.2\", \"blocks.4\"]\n[sampler]\nkind = \"greedy_coreset\"\nratio = 0.05\n",
        None,
    )
    .unwrap();
    let e = evaluate(
        &cfg,
        &EvaluateOptions {
            data_root: root.into(),
            categories: vec![name.clone()],
            output: None,
            quiet: true,
        },
    )
    .expect_err("mask size mismatch refused")
    .to_string();
    assert!(
        e.contains(&mask.display().to_string()) && e.contains("mask is (50, 70)"),
        "{e}"
    );

    // A missing mask among masked images of its kind (partial masks).
    std::fs::remove_file(&mask).unwrap();
    let m = dataset_err(root, &name);
    assert!(m.contains("have no mask"), "{m}");
}

#[test]
fn image_limits_and_devices_in_the_config() {
    let base = "[backbone]\narch = \"efficientnet_lite0\"\nlayers = [\"blocks.2\"]\n[sampler]\nkind = \"random\"\nratio = 0.1\n";
    let err = |extra: &str| {
        Config::from_toml_str(&format!("{extra}\n{base}"), None)
            .and_then(|c| c.validate().map(|_| c))
            .expect_err("refused")
            .to_string()
    };
    let e = err("device = \"tpu\"");
    assert!(e.contains("`device`") && e.contains("cuda:N"), "{e}");
    let e = err("device = \"cuda:first\"");
    assert!(e.contains("GPU index"), "{e}");
    let e = err("[data]\nmax_image_pixels = 0");
    assert!(e.contains("data.max_image_pixels"), "{e}");
    let e = err("[data]\nmin_image_side = 0");
    assert!(e.contains("data.min_image_side"), "{e}");
    let ok = Config::from_toml_str(
        &format!("[data]\nmax_image_pixels = 5000\nmin_image_side = 8\n{base}"),
        None,
    )
    .unwrap();
    assert_eq!(
        ok.image_limits(),
        ImageLimits {
            max_pixels: 5000,
            min_side: 8
        }
    );
}
