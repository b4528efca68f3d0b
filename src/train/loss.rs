//! The paper's energy: pixel-wise softmax and weighted cross-entropy, E = -sum_x w(x) log p_l(x)(x), averaged over
//! pixels. Pixels with weight 0 (ignored regions of sparse ground truth) do not contribute.

use burn::tensor::{Int, Tensor, activation::log_softmax, backend::Backend};

/// `logits [n, k, h, w]`, `target [n, h, w]` class indices, `weights [n, h, w]` -> scalar loss.
pub fn weighted_cross_entropy<B: Backend>(
    logits: Tensor<B, 4>,
    target: Tensor<B, 3, Int>,
    weights: Tensor<B, 3>,
) -> Tensor<B, 1> {
    let [n, _, h, w] = logits.dims();
    let log_p = log_softmax(logits, 1);
    let picked = log_p.gather(1, target.unsqueeze_dim::<4>(1)).reshape([n, h, w]);
    (picked * weights).mean().neg()
}
