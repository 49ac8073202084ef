#![no_main]
//! Properties of the feature extractor on arbitrary bytes: never panics, indices sorted, unique
//! and in range, values finite, layers within limits, deterministic.
use libfuzzer_sys::fuzz_target;
use ward_ml::features::{Extractor, DIM};

fuzz_target!(|data: &[u8]| {
    let ex = Extractor::new();
    let a = ex.analyze(data);
    let f = &a.features;
    assert_eq!(f.idx.len(), f.val.len());
    assert!(f.idx.windows(2).all(|w| w[0] < w[1]));
    assert!(f.idx.iter().all(|&i| (i as usize) < DIM));
    assert!(f.val.iter().all(|v| v.is_finite()));
    assert!(a.layers <= ex.limits.max_layers);
    assert_eq!(ex.analyze(data).features, a.features);
});
