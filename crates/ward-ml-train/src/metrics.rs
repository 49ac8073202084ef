//! Threshold-free and thresholded metrics over scores.

/// ROC AUC (probability that a random positive outranks a random negative; ties count half).
pub fn roc_auc(pos: &[f32], neg: &[f32]) -> f64 {
    if pos.is_empty() || neg.is_empty() {
        return f64::NAN;
    }
    let mut all: Vec<(f32, bool)> = pos
        .iter()
        .map(|&s| (s, true))
        .chain(neg.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + j + 1) as f64 / 2.0; // ranks are 1-based
        let npos = all[i..j].iter().filter(|x| x.1).count();
        rank_sum += avg_rank * npos as f64;
        i = j;
    }
    let np = pos.len() as f64;
    let nn = neg.len() as f64;
    (rank_sum - np * (np + 1.0) / 2.0) / (np * nn)
}

/// The smallest threshold `t` such that at most `fpr * |neg|` negatives score `>= t`.
pub fn threshold_at_fpr(neg: &[f32], fpr: f64) -> f32 {
    if neg.is_empty() {
        return 0.5;
    }
    let mut s = neg.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    let k = (fpr * s.len() as f64).floor() as usize;
    if k >= s.len() {
        return 0.0;
    }
    next_up(s[k])
}

/// The next representable f32 above `x` (for x in [0, 1]).
pub fn next_up(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f32::from_bits(1);
    }
    let b = x.to_bits();
    if x > 0.0 {
        f32::from_bits(b + 1)
    } else {
        f32::from_bits(b - 1)
    }
}

/// Fraction of `scores` at or above `t`.
pub fn rate_at(scores: &[f32], t: f32) -> f64 {
    if scores.is_empty() {
        return f64::NAN;
    }
    scores.iter().filter(|&&s| s >= t).count() as f64 / scores.len() as f64
}

/// Recall at the threshold that gives false-positive rate `fpr` on `neg`.
pub fn recall_at_fpr(pos: &[f32], neg: &[f32], fpr: f64) -> f64 {
    rate_at(pos, threshold_at_fpr(neg, fpr))
}

/// Precision when a fraction `prevalence` of scripts is malicious.
pub fn precision_at_prevalence(tpr: f64, fpr: f64, prevalence: f64) -> f64 {
    let tp = prevalence * tpr;
    let fp = (1.0 - prevalence) * fpr;
    if tp + fp == 0.0 {
        f64::NAN
    } else {
        tp / (tp + fp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_basic() {
        assert_eq!(roc_auc(&[0.9, 0.8], &[0.1, 0.2]), 1.0);
        assert_eq!(roc_auc(&[0.1], &[0.9]), 0.0);
        assert_eq!(roc_auc(&[0.5], &[0.5]), 0.5);
    }

    #[test]
    fn threshold_fpr() {
        let neg: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0).collect();
        let t = threshold_at_fpr(&neg, 1e-3);
        assert_eq!(rate_at(&neg, t), 1e-3);
        let t = threshold_at_fpr(&neg, 0.0);
        assert_eq!(rate_at(&neg, t), 0.0);
        assert!((precision_at_prevalence(1.0, 0.001, 0.001) - 0.5).abs() < 0.01);
    }
}
