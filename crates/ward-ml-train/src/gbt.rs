//! Gradient-boosted trees over the hand-built signals plus a selected set of hashed features:
//! the non-linear learner measured against logistic regression (issue 12, item 3).
//!
//! Training uses the `forust-ml` crate (histogram gradient boosting, log loss, sample weights,
//! seeded and single-order deterministic). The fitted trees are copied into [`Gbt`], a compact
//! form that scores a sparse [`FeatureVector`] without building a matrix, so inference needs no
//! training crate and no allocation beyond one dense row.
//!
//! Columns: every dense signal (`0..N_SIGNALS`), then the `tokens` hashed features that occur in
//! the most distinct split groups of the training part (clusters, packages, templates), at
//! least `min_token_groups` of them. Counting groups rather than files keeps one big campaign's
//! identifiers out: a token must recur across families to become a column.

use std::collections::BTreeMap;

use forust_ml::{GradientBooster, Matrix};
use serde::{Deserialize, Serialize};

use crate::train::Example;
use ward_ml::features::{FeatureVector, N_SIGNALS};

/// Hyper-parameters of the boosted trees (every field is a CLI flag of the dev CLI).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GbtOptions {
    /// Trees.
    pub iterations: usize,
    /// Shrinkage.
    pub learning_rate: f32,
    /// Depth of each tree.
    pub max_depth: usize,
    /// L2 on leaf weights.
    pub l2: f32,
    /// Minimum hessian sum in a leaf.
    pub min_leaf_weight: f32,
    /// Histogram bins per column.
    pub nbins: u16,
    /// Hashed features kept as columns.
    pub tokens: usize,
    /// A hashed feature becomes a column only if it occurs in at least this many training
    /// groups.
    pub min_token_groups: usize,
    /// Worker threads of the fit (the machine's builds compete for the cores).
    pub threads: usize,
}

impl Default for GbtOptions {
    fn default() -> Self {
        GbtOptions {
            iterations: 300,
            learning_rate: 0.1,
            max_depth: 5,
            l2: 1.0,
            min_leaf_weight: 1.0,
            nbins: 64,
            tokens: 512,
            min_token_groups: 5,
            threads: 2,
        }
    }
}

/// One node of a compact tree: a split (`col`, `value`: `x < value` goes left) or a leaf.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Node {
    /// Column of the split (`u32::MAX` for a leaf).
    pub col: u32,
    /// Split value, or the leaf's weight.
    pub value: f64,
    /// Left child.
    pub left: u32,
    /// Right child.
    pub right: u32,
}

/// A fitted ensemble in compact form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Gbt {
    /// Feature index of each column after the dense signals (ascending).
    pub token_cols: Vec<u32>,
    /// Base margin.
    pub base: f32,
    /// Trees (node 0 is the root).
    pub trees: Vec<Vec<Node>>,
}

const LEAF: u32 = u32::MAX;

impl Gbt {
    /// Number of columns.
    pub fn cols(&self) -> usize {
        N_SIGNALS + self.token_cols.len()
    }

    /// The dense row of a sparse vector (columns not in the model are dropped).
    pub fn row(&self, fv: &FeatureVector, row: &mut Vec<f32>) {
        row.clear();
        row.resize(self.cols(), 0.0);
        for (&i, &v) in fv.idx.iter().zip(&fv.val) {
            if (i as usize) < N_SIGNALS {
                row[i as usize] = v;
            } else if let Ok(k) = self.token_cols.binary_search(&i) {
                row[N_SIGNALS + k] = v;
            }
        }
    }

    /// Log-odds of a dense row.
    pub fn margin_row(&self, row: &[f32]) -> f32 {
        let mut z = self.base;
        for t in &self.trees {
            // At most one step per node: a malformed tree cannot loop.
            let mut n = 0usize;
            for _ in 0..t.len() {
                let Some(node) = t.get(n) else { break };
                if node.col == LEAF {
                    z += node.value as f32;
                    break;
                }
                let x = row.get(node.col as usize).copied().unwrap_or(0.0);
                n = if (x as f64) < node.value {
                    node.left
                } else {
                    node.right
                } as usize;
            }
        }
        z
    }

    /// Score in `[0, 1]`.
    pub fn score(&self, fv: &FeatureVector) -> f32 {
        let mut row = Vec::new();
        self.row(fv, &mut row);
        1.0 / (1.0 + (-self.margin_row(&row)).exp())
    }
}

/// Hashed features by the number of distinct groups of `idx` they occur in, most first; at most
/// `n`, each in at least `min_groups` groups.
pub fn select_tokens(ex: &[Example], idx: &[usize], n: usize, min_groups: usize) -> Vec<u32> {
    let mut last: BTreeMap<u32, (usize, &str)> = BTreeMap::new();
    for &i in idx {
        let e = &ex[i];
        if e.weight <= 0.0 {
            continue;
        }
        let lo = e.fv.idx.partition_point(|&j| (j as usize) < N_SIGNALS);
        for &j in &e.fv.idx[lo..] {
            let c = last.entry(j).or_insert((0, ""));
            if c.1 != e.group.as_str() {
                c.0 += 1;
                c.1 = e.group.as_str();
            }
        }
    }
    // Groups are contiguous only by luck; count exactly with a set when a token recurs.
    let mut counts: BTreeMap<u32, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for &i in idx {
        let e = &ex[i];
        if e.weight <= 0.0 {
            continue;
        }
        let lo = e.fv.idx.partition_point(|&j| (j as usize) < N_SIGNALS);
        for &j in &e.fv.idx[lo..] {
            if last.get(&j).is_some_and(|c| c.0 >= min_groups) {
                counts.entry(j).or_default().insert(e.group.as_str());
            }
        }
    }
    let mut v: Vec<(u32, usize)> = counts
        .into_iter()
        .map(|(j, s)| (j, s.len()))
        .filter(|&(_, c)| c >= min_groups)
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    let mut cols: Vec<u32> = v.into_iter().map(|x| x.0).collect();
    cols.sort_unstable();
    cols
}

/// Fits boosted trees on the examples `idx` (their `weight`s as sample weights).
pub fn fit_gbt(ex: &[Example], idx: &[usize], o: &GbtOptions, seed: u64) -> Gbt {
    let idx: Vec<usize> = idx
        .iter()
        .copied()
        .filter(|&i| ex[i].weight > 0.0)
        .collect();
    let model = Gbt {
        token_cols: select_tokens(ex, &idx, o.tokens, o.min_token_groups),
        ..Gbt::default()
    };
    let (rows, cols) = (idx.len(), model.cols());
    // Column-major, as forust reads it.
    let mut data = vec![0f64; rows * cols];
    let mut row = Vec::new();
    for (r, &i) in idx.iter().enumerate() {
        model.row(&ex[i].fv, &mut row);
        for (c, &x) in row.iter().enumerate() {
            data[c * rows + r] = x as f64;
        }
    }
    let y: Vec<f64> = idx.iter().map(|&i| ex[i].label as f64).collect();
    let w: Vec<f64> = idx.iter().map(|&i| ex[i].weight as f64).collect();
    let m = Matrix::new(&data, rows, cols);
    let mut b = GradientBooster::default()
        .set_iterations(o.iterations)
        .set_learning_rate(o.learning_rate)
        .set_max_depth(o.max_depth)
        .set_l2(o.l2)
        .set_min_leaf_weight(o.min_leaf_weight)
        .set_nbins(o.nbins)
        .set_seed(seed)
        .set_parallel(o.threads > 1)
        .set_num_threads(Some(o.threads.max(1)));
    if let Err(e) = b.fit(&m, &y, &w, None) {
        tracing::error!(error = %e, "boosted-tree fit failed; the model scores the base rate");
        return model;
    }
    compact(&b, model.token_cols)
}

/// Copies a fitted booster into the compact form.
fn compact(b: &GradientBooster, token_cols: Vec<u32>) -> Gbt {
    Gbt {
        token_cols,
        base: b.base_score as f32,
        trees: b
            .trees
            .iter()
            .map(|t| {
                t.nodes
                    .iter()
                    .map(|n| {
                        if n.is_leaf {
                            Node {
                                col: LEAF,
                                value: n.weight_value as f64,
                                left: 0,
                                right: 0,
                            }
                        } else {
                            Node {
                                col: n.split_feature as u32,
                                value: n.split_value,
                                left: n.left_child as u32,
                                right: n.right_child as u32,
                            }
                        }
                    })
                    .collect()
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Origin;

    fn example(label: u8, group: &str, feats: &[(u32, f32)]) -> Example {
        Example {
            fv: FeatureVector {
                idx: feats.iter().map(|x| x.0).collect(),
                val: feats.iter().map(|x| x.1).collect(),
            },
            label,
            group: group.into(),
            category: String::new(),
            id: String::new(),
            origin: if label == 1 {
                Origin::Pack
            } else {
                Origin::Benign
            },
            weight: 1.0,
            windows: Vec::new(),
        }
    }

    /// Malicious iff signal 3 AND token A are both present (an interaction no linear model
    /// without a combination feature separates); token B is noise in every group.
    fn xor_like() -> Vec<Example> {
        let (a, b) = (N_SIGNALS as u32 + 10, N_SIGNALS as u32 + 20);
        let mut ex = Vec::new();
        for g in 0..40 {
            let grp = format!("g{g}");
            for k in 0..6 {
                let s3 = k % 2 == 0;
                let ta = (k / 2) % 2 == 0 || g % 3 == 0;
                let mut f = Vec::new();
                if s3 {
                    f.push((3, 1.0));
                }
                f.push((5, (g % 7) as f32 / 7.0));
                if ta {
                    f.push((a, 1.0));
                }
                f.push((b, 1.0));
                ex.push(example((s3 && ta) as u8, &grp, &f));
            }
        }
        ex
    }

    #[test]
    fn learns_an_interaction_and_is_deterministic() {
        let ex = xor_like();
        let idx: Vec<usize> = (0..ex.len()).collect();
        let o = GbtOptions {
            iterations: 40,
            min_token_groups: 2,
            threads: 1,
            ..GbtOptions::default()
        };
        let m = fit_gbt(&ex, &idx, &o, 7);
        assert_eq!(m.token_cols.len(), 2, "both tokens occur in >= 2 groups");
        for e in &ex {
            let s = m.score(&e.fv);
            if e.label == 1 {
                assert!(s > 0.9, "positive scored {s}");
            } else {
                assert!(s < 0.1, "negative scored {s}");
            }
        }
        assert_eq!(m, fit_gbt(&ex, &idx, &o, 7), "same inputs, same trees");
        let two = GbtOptions { threads: 2, ..o };
        assert_eq!(
            m,
            fit_gbt(&ex, &idx, &two, 7),
            "threads do not change the fit"
        );
    }

    #[test]
    fn compact_trees_score_like_the_booster() {
        let ex = xor_like();
        let idx: Vec<usize> = (0..ex.len()).collect();
        let token_cols = select_tokens(&ex, &idx, 8, 2);
        let probe = Gbt {
            token_cols: token_cols.clone(),
            ..Gbt::default()
        };
        let (rows, cols) = (ex.len(), probe.cols());
        let mut data = vec![0f64; rows * cols];
        let mut row = Vec::new();
        for (r, e) in ex.iter().enumerate() {
            probe.row(&e.fv, &mut row);
            for (c, &x) in row.iter().enumerate() {
                data[c * rows + r] = x as f64;
            }
        }
        let y: Vec<f64> = ex.iter().map(|e| e.label as f64).collect();
        let w = vec![1.0; rows];
        let m = Matrix::new(&data, rows, cols);
        let mut b = GradientBooster::default()
            .set_iterations(25)
            .set_parallel(false);
        b.fit(&m, &y, &w, None).expect("fit");
        let want = b.predict(&m, false);
        let g = compact(&b, token_cols);
        for (e, z) in ex.iter().zip(want) {
            g.row(&e.fv, &mut row);
            assert!((g.margin_row(&row) as f64 - z).abs() < 1e-4);
        }
    }

    #[test]
    fn tokens_are_counted_by_group_not_by_file() {
        let t = N_SIGNALS as u32 + 1;
        let u = N_SIGNALS as u32 + 2;
        let mut ex: Vec<Example> = (0..50)
            .map(|_| example(1, "campaign", &[(t, 1.0)]))
            .collect();
        for g in 0..4 {
            ex.push(example(0, &format!("p{g}"), &[(u, 1.0)]));
        }
        let idx: Vec<usize> = (0..ex.len()).collect();
        assert_eq!(select_tokens(&ex, &idx, 10, 2), vec![u]);
        assert_eq!(select_tokens(&ex, &idx, 10, 1), vec![t, u]);
    }
}
