use crate::testing::{run, run_with, CID};
use crate::DetectorsConfig;
use ward_event::build::*;
use ward_event::{Category, Layer};

fn ev(layer: Layer, container: bool) -> ward_event::Event {
    let b = ExecBuilder::new(1, 10, 1, "/tmp/tool").layer(layer);
    if container {
        b.container(CID, "app", "img").event()
    } else {
        b.event()
    }
}

#[test]
fn off_by_default_and_fires_on_drift_when_enabled() {
    assert!(run(vec![ev(Layer::Added, true)]).findings.is_empty());
    let mut cfg = DetectorsConfig::default();
    cfg.added_binary.enabled = true;
    for layer in [Layer::Added, Layer::Modified, Layer::Memfd] {
        let r = run_with(&cfg, Default::default(), None, vec![ev(layer, true)]);
        assert_eq!(
            r.only(Category::AddedBinaryExecuted)
                .source_str("File_Layer"),
            Some(layer.as_str())
        );
    }
    for (layer, c) in [
        (Layer::Image, true),
        (Layer::NotOverlay, true),
        (Layer::Added, false),
    ] {
        assert!(run_with(&cfg, Default::default(), None, vec![ev(layer, c)])
            .findings
            .is_empty());
    }
}
