#include "vqvae2/models/quantizer.h"

#include "vqvae2/core/error.h"
#include "vqvae2/core/precision.h"

namespace vqvae2 {

void QuantizerOptions::validate() const {
  VQVAE2_CHECK(codes >= 1 && codes <= 65535, "codebook size K must be in [1, 65535], got {}", codes);
  VQVAE2_CHECK(dim >= 1 && dim <= 8192, "code width D must be in [1, 8192], got {}", dim);
  VQVAE2_CHECK(beta >= 0, "commitment cost beta must be non-negative, got {}", beta);
  VQVAE2_CHECK(decay > 0 && decay < 1, "EMA decay gamma must be in (0, 1), got {}", decay);
  VQVAE2_CHECK(epsilon > 0, "Laplace epsilon must be positive, got {}", epsilon);
  VQVAE2_CHECK(dead_code_threshold >= 0, "dead-code threshold must be non-negative, got {}", dead_code_threshold);
}

namespace functional {

torch::Tensor nearest_codes(const torch::Tensor& z, const torch::Tensor& codebook) {
  torch::NoGradGuard no_grad;
  // scores[n, j] = ||e_j||² - 2 z_n·e_j   ([N, K]); argmin over j.
  const auto e_sq = codebook.pow(2).sum(1);
  const auto scores = torch::addmm(e_sq.unsqueeze(0), z, codebook.t(), /*beta=*/1, /*alpha=*/-2);
  return scores.argmin(1);
}

torch::Tensor straight_through(const torch::Tensor& z_e, const torch::Tensor& z_q) {
  return z_e + (z_q - z_e).detach();
}

torch::Tensor pick_rows(int64_t rows, int64_t n, const torch::Device& device) {
  const auto options = torch::TensorOptions().dtype(torch::kLong).device(device);
  return rows >= n ? torch::randperm(rows, options).slice(0, 0, n) : torch::randint(rows, {n}, options);
}

torch::Tensor serving_error(const torch::Tensor& z, const torch::Tensor& codebook) {
  torch::NoGradGuard no_grad;
  return (z - codebook.index_select(0, nearest_codes(z, codebook))).pow(2).sum(1);
}

torch::Tensor pick_weighted(const torch::Tensor& weights, int64_t n) {
  const auto positive = (weights > 0).sum().item<int64_t>();
  if (positive == 0) return pick_rows(weights.size(0), n, weights.device());
  // Without replacement while enough rows have a positive weight; the few beyond that repeat.
  return torch::multinomial(weights, n, /*replacement=*/positive < n);
}

torch::Tensor pick_badly_served(const torch::Tensor& z, const torch::Tensor& codebook, int64_t n) {
  return pick_weighted(serving_error(z, codebook), n);
}

torch::Tensor code_counts(const torch::Tensor& codes, int64_t num_codes) {
  return torch::zeros({num_codes}, torch::TensorOptions().dtype(torch::kFloat).device(codes.device()))
      .index_add_(0, codes.reshape(-1), torch::ones({codes.numel()}, torch::TensorOptions().device(codes.device())));
}

torch::Tensor perplexity(const torch::Tensor& counts) {
  const auto p = counts / counts.sum().clamp_min(1);
  const auto entropy = -(p * p.clamp_min(1e-12).log()).sum();
  return entropy.exp();
}

void ema_update(torch::Tensor& cluster_size, torch::Tensor& embed_sum, torch::Tensor& codebook,
                const torch::Tensor& counts, const torch::Tensor& sums, double decay, double epsilon) {
  torch::NoGradGuard no_grad;
  const auto num_codes = static_cast<double>(cluster_size.size(0));
  cluster_size.mul_(decay).add_(counts, 1 - decay);  // N_i
  embed_sum.mul_(decay).add_(sums, 1 - decay);       // m_i
  const auto total = cluster_size.sum();
  const auto smoothed = (cluster_size + epsilon) / (total + num_codes * epsilon) * total;
  codebook.copy_(embed_sum / smoothed.unsqueeze(1));  // e_i = m_i / Ñ_i
}

torch::Tensor flatten_channels_last(const torch::Tensor& z) {
  // [B, D, H, W] -> [B, H, W, D] -> [B*H*W, D]
  return z.permute({0, 2, 3, 1}).reshape({-1, z.size(1)});
}

torch::Tensor unflatten_channels_last(const torch::Tensor& z, const torch::IntArrayRef& shape) {
  // [B*H*W, D] -> [B, H, W, D] -> [B, D, H, W]
  return z.reshape({shape[0], shape[2], shape[3], shape[1]}).permute({0, 3, 1, 2});
}

}  // namespace functional

QuantizerImpl::QuantizerImpl(const QuantizerOptions& options) : options_(options) {
  options_.validate();
  // N starts at one per code: an unused code then decays towards zero together with its m_i, so
  // e_i = m_i / Ñ_i stays where it is instead of being divided by ε (a classic way to lose codes).
  cluster_size_ = register_buffer("cluster_size", torch::ones({options_.codes}));
  initialised_ = register_buffer("initialised", torch::zeros({}, torch::kFloat));
  restarts_ = register_buffer("restarts", torch::zeros({}, torch::kLong));
}

QuantizerOutput QuantizerImpl::forward(const torch::Tensor& z_e_in) {
  VQVAE2_CHECK(z_e_in.dim() == 4 && z_e_in.size(1) == options_.dim,
               "quantizer expects z_e of shape [B, {}, H, W], got {}", options_.dim, shape_of(z_e_in.sizes()));
  // Mixed precision (core/precision.h): the encoder may hand over bf16 or fp16 z_e, but distances,
  // the nearest-code search, the losses and the EMA statistics stay fp32 with autocast off here.
  // In fp16, ||e_j||² - 2 z·e_j overflows to inf for codes far from the data, and the EMA sums lose
  // the (1-γ) increments below fp16's resolution: the infinite latent losses users of the reference
  // implementations hit when they train in fp16.
  const AutocastGuard fp32(Precision::kFP32, z_e_in.device());
  const auto z_e = z_e_in.to(torch::kFloat);
  const auto z = functional::flatten_channels_last(z_e);  // [N, D]

  // A batch with a NaN or an infinity is one the training loop skips: it must not touch the codebook.
  bool learn = is_training() && torch::isfinite(z).all().item<bool>();
  if (is_training() && replicas_) {
    // Replicas learn together or not at all: each step below is a collective every replica joins.
    auto not_finite = torch::full({1}, learn ? 0.0 : 1.0, z.options().dtype(torch::kFloat));
    replicas_->sum({not_finite});
    learn = not_finite.item<float>() == 0;
  }
  if (learn && options_.init_from_data && initialised_.item<float>() == 0) initialise_from(z.detach());

  const auto codes = functional::nearest_codes(z.detach(), codebook());  // [N]
  const auto e_k = codebook().index_select(0, codes);                      // [N, D]
  auto counts = functional::code_counts(codes, options_.codes);            // [K]
  torch::Tensor sums;                                                      // [K, D] Σ_j z_ij, EMA only
  if (learn) {
    torch::NoGradGuard no_grad;
    if (options_.ema) sums = torch::zeros({options_.codes, options_.dim}, z.options()).index_add_(0, codes, z.detach());
    // Replicas: the statistics of the whole batch, so every replica takes the same EMA step.
    if (replicas_) replicas_->sum(sums.defined() ? std::vector<torch::Tensor>{counts, sums} : std::vector<torch::Tensor>{counts});
  }

  QuantizerOutput out;
  out.codebook_loss = codebook_loss(z, e_k);
  out.commitment_loss = options_.beta * torch::mse_loss(z, e_k.detach());
  out.z_q = functional::unflatten_channels_last(functional::straight_through(z, e_k), z_e.sizes());
  out.codes = codes.reshape({z_e.size(0), z_e.size(2), z_e.size(3)});
  out.perplexity = functional::perplexity(counts);
  out.usage = (counts > 0).sum().to(torch::kFloat) / static_cast<double>(options_.codes);

  if (learn) {
    torch::NoGradGuard no_grad;
    update(counts, sums);
    if (options_.dead_code_threshold > 0 && restarts_enabled_) restart_dead_codes(z.detach());
  }
  return out;
}

QuantizerImpl::State QuantizerImpl::snapshot() const {
  State state;
  for (const auto& p : parameters()) state.tensors.push_back(p.detach().clone());
  for (const auto& b : buffers()) state.tensors.push_back(b.clone());
  return state;
}

void QuantizerImpl::restore(const State& state) {
  torch::NoGradGuard no_grad;
  auto tensors = parameters();
  for (const auto& b : buffers()) tensors.push_back(b);
  VQVAE2_CHECK(tensors.size() == state.tensors.size(), "quantizer snapshot of {} tensors restored into {}",
               state.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].copy_(state.tensors[i]);
}

torch::Tensor QuantizerImpl::embed(const torch::Tensor& codes) const {
  VQVAE2_CHECK(codes.dim() == 3, "codes must have shape [B, H, W], got {}", shape_of(codes.sizes()));
  VQVAE2_CHECK(codes.numel() == 0 || (codes.min().item<int64_t>() >= 0 && codes.max().item<int64_t>() < options_.codes),
               "codes must lie in [0, {}), got values in [{}, {}]", options_.codes, codes.min().item<int64_t>(),
               codes.max().item<int64_t>());
  const auto e = codebook().index_select(0, codes.reshape(-1).to(torch::kLong));  // [B*H*W, D]
  return functional::unflatten_channels_last(e, {codes.size(0), options_.dim, codes.size(1), codes.size(2)});
}

void QuantizerImpl::initialise_from(const torch::Tensor& z) {
  // e = K distinct encoder outputs of the first batch (drawn with replacement only when the batch has
  // fewer than K vectors): two equal codes tie in every nearest-code contest, and only one can win.
  // N_i = 1, so the EMA codebook follows the encoder quickly in the first steps.
  torch::NoGradGuard no_grad;
  const auto K = options_.codes;
  const auto picks = functional::pick_rows(z.size(0) * replica_count(), K, z.device());
  overwrite(torch::arange(K, picks.options()), rows_of_whole_batch(z, picks),
            std::max(options_.dead_code_threshold, 1.0));
  initialised_.fill_(1);
}

void QuantizerImpl::restart_dead_codes(const torch::Tensor& z) {
  // A code whose EMA count N_i has fallen below the threshold receives (almost) no vectors: move it
  // onto an encoder output of this batch the codebook serves badly — drawn with probability ∝ its
  // squared distance to its nearest code, as k-means++ seeds clusters — where it will be used.
  // Its N_i restarts at the mean count Σ_k N_k / K, not at the threshold: unused, it then has
  // ln(mean / threshold) / -ln γ steps (hundreds) to win vectors before it counts as dead again,
  // where a restart at the threshold would be undone one empty batch later and repeated every step.
  const auto dead = (cluster_size_ < options_.dead_code_threshold).nonzero().reshape(-1);
  const auto n_dead = dead.numel();
  if (n_dead == 0) return;
  // Over replicas, N_i (hence `dead`) is the same everywhere; the errors are those of the whole batch.
  const auto picks = functional::pick_weighted(whole_batch(functional::serving_error(z, codebook())), n_dead);
  const double mean = cluster_size_.mean().item<double>();
  overwrite(dead, rows_of_whole_batch(z, picks), std::max(mean, options_.dead_code_threshold));
  restarts_.add_(n_dead);
}

torch::Tensor QuantizerImpl::whole_batch(const torch::Tensor& local) const {
  if (!replicas_) return local;
  const auto n = local.size(0);
  auto sizes = local.sizes().vec();
  sizes[0] = n * replicas_->replicas;
  auto whole = torch::zeros(sizes, local.options());
  whole.narrow(0, replicas_->rank * n, n).copy_(local);
  replicas_->sum({whole});
  return whole;
}

torch::Tensor QuantizerImpl::rows_of_whole_batch(const torch::Tensor& z, torch::Tensor picks) const {
  // Replica 0 drew the rows (its random stream is the one a single process would use); each
  // replica fills in the rows it holds, and a sum gives every replica the same vectors a single
  // process would have picked.
  if (!replicas_) return z.index_select(0, picks);
  replicas_->broadcast({picks});
  const auto n = z.size(0);
  const auto local = picks - replicas_->rank * n;
  const auto mine = ((local >= 0) & (local < n)).nonzero().reshape(-1);
  auto values = torch::zeros({picks.size(0), z.size(1)}, z.options());
  values.index_copy_(0, mine, z.index_select(0, local.index_select(0, mine)));
  replicas_->sum({values});
  return values;
}

void QuantizerImpl::pretty_print(std::ostream& stream) const {
  stream << name() << "(K=" << options_.codes << ", D=" << options_.dim << ", beta=" << options_.beta;
  if (options_.ema) stream << ", gamma=" << options_.decay;
  if (options_.dead_code_threshold > 0) stream << ", dead_code_threshold=" << options_.dead_code_threshold;
  stream << ")";
}

// ---- codebook loss (VQ-VAE-1) --------------------------------------------------------------------

VectorQuantizerImpl::VectorQuantizerImpl(const QuantizerOptions& options) : QuantizerImpl(options) {
  const double bound = 1.0 / static_cast<double>(options_.codes);
  codebook_ = register_parameter("codebook", torch::empty({options_.codes, options_.dim}).uniform_(-bound, bound));
}

void VectorQuantizerImpl::update(const torch::Tensor& counts, const torch::Tensor&) {
  // e learns by gradient; only the usage statistics move here.
  cluster_size_.mul_(options_.decay).add_(counts, 1 - options_.decay);
}

void VectorQuantizerImpl::overwrite(const torch::Tensor& which, const torch::Tensor& values, double count) {
  torch::NoGradGuard no_grad;
  codebook_.index_copy_(0, which, values);
  cluster_size_.index_fill_(0, which, count);
}

torch::Tensor VectorQuantizerImpl::codebook_loss(const torch::Tensor& z, const torch::Tensor& e_k) const {
  return torch::mse_loss(e_k, z.detach());  // ||sg[z_e] - e||²: reaches e only
}

// ---- EMA (VQ-VAE-2) -------------------------------------------------------------------------------

VectorQuantizerEMAImpl::VectorQuantizerEMAImpl(const QuantizerOptions& options) : QuantizerImpl(options) {
  codebook_ = register_buffer("codebook", torch::randn({options_.codes, options_.dim}));
  embed_sum_ = register_buffer("embed_sum", codebook_.clone());  // m_i = N_i e_i with N_i = 1
}

void VectorQuantizerEMAImpl::update(const torch::Tensor& counts, const torch::Tensor& sums) {
  functional::ema_update(cluster_size_, embed_sum_, codebook_, counts, sums, options_.decay, options_.epsilon);
}

void VectorQuantizerEMAImpl::overwrite(const torch::Tensor& which, const torch::Tensor& values, double count) {
  // Keep e_i = m_i / N_i consistent: N_i = count, m_i = count · value.
  codebook_.index_copy_(0, which, values);
  embed_sum_.index_copy_(0, which, values * count);
  cluster_size_.index_fill_(0, which, count);
}

torch::Tensor VectorQuantizerEMAImpl::codebook_loss(const torch::Tensor& z, const torch::Tensor&) const {
  return torch::zeros({}, z.options());
}

std::shared_ptr<QuantizerImpl> make_quantizer(const QuantizerOptions& options) {
  if (options.ema) return std::make_shared<VectorQuantizerEMAImpl>(options);
  return std::make_shared<VectorQuantizerImpl>(options);
}

}  // namespace vqvae2
