// Vector quantisation (MISSION.md §1.2): the discrete bottleneck of VQ-VAE and VQ-VAE-2.
//
// Glossary: B = batch, D = code width, H, W = latent height and width, K = number of codes,
// N = B*H*W vectors quantised at once. z_e = encoder output, e = codebook [K, D],
// z_q = e_k with k = argmin_j ||z_e - e_j||, sg = stop-gradient.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <vector>

namespace vqvae2 {

struct QuantizerOptions {
  int64_t codes = 512;              // K
  int64_t dim = 64;                 // D
  bool ema = true;                  // EMA codebook (VQ-VAE-2) or codebook loss (VQ-VAE-1)
  double beta = 0.25;               // commitment cost β
  double decay = 0.99;              // EMA decay γ (also for the usage statistics of either variant)
  double epsilon = 1e-5;            // Laplace smoothing of the EMA counts N
  bool init_from_data = true;       // first training batch: codebook = random encoder outputs
  double dead_code_threshold = 0.0; // restart codes whose EMA count N_i falls below this; 0 = off
                                    // onto badly served encoder outputs, with N_i set to the mean count
                                    // so that it has time to win vectors

  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(QuantizerOptions, codes, dim, ema, beta, decay, epsilon,
                                                init_from_data, dead_code_threshold)

// How the replicas of a quantizer agree on one codebook in data-parallel training, each
// quantising its share of the batch (training/distributed.h makes one from a process group).
struct ReplicaSync {
  int64_t rank = 0;      // this replica
  int64_t replicas = 1;  // all of them; every replica's share has the same size
  std::function<void(std::vector<torch::Tensor>)> sum;        // in place: element-wise sums over replicas
  std::function<void(std::vector<torch::Tensor>)> broadcast;  // in place: replica 0's values
};

struct QuantizerOutput {
  torch::Tensor z_q;              // [B, D, H, W] e_k in the forward pass, gradient copied to z_e
  torch::Tensor codes;            // [B, H, W] int64 in [0, K)
  torch::Tensor codebook_loss;    // ||sg[z_e] - e||² (zero for the EMA variant)
  torch::Tensor commitment_loss;  // β ||z_e - sg[e]||²
  torch::Tensor perplexity;       // exp(-Σ_k p_k log p_k), p_k = share of this batch's vectors on code k
  torch::Tensor usage;            // fraction of the K codes this batch used
};

namespace functional {

// [N, D], [K, D] -> [N] int64: argmin_j ||z_n - e_j||². Expanded as ||e_j||² - 2 z_n·e_j (the
// ||z_n||² term is the same for every j) so it is one matrix product, not an [N, K, D] tensor.
torch::Tensor nearest_codes(const torch::Tensor& z, const torch::Tensor& codebook);

// Straight-through estimator: the value of z_q, the gradient of z_e (z_e + sg[z_q - z_e]).
torch::Tensor straight_through(const torch::Tensor& z_e, const torch::Tensor& z_q);

// n distinct rows of [0, rows) when rows >= n (a random permutation's first n), else n rows drawn
// with replacement: [n] int64 on `device`.
torch::Tensor pick_rows(int64_t rows, int64_t n, const torch::Device& device);

// ‖z_n - e_k(n)‖² [N]: each row of z [N, D]'s squared distance to its nearest code.
torch::Tensor serving_error(const torch::Tensor& z, const torch::Tensor& codebook);

// n rows drawn with probability ∝ weights [N] (non-negative), distinct while enough rows have a
// positive weight; uniform (pick_rows) when none has. -> [n] int64.
torch::Tensor pick_weighted(const torch::Tensor& weights, int64_t n);

// n rows of z [N, D] drawn with probability ∝ their serving_error (k-means++ seeding): the vectors
// the codebook serves worst. -> [n] int64.
torch::Tensor pick_badly_served(const torch::Tensor& z, const torch::Tensor& codebook, int64_t n);

// [N] int64 codes -> [K] float counts n_k.
torch::Tensor code_counts(const torch::Tensor& codes, int64_t num_codes);

// exp(entropy) of the distribution counts / sum(counts); 0 log 0 = 0.
torch::Tensor perplexity(const torch::Tensor& counts);

// One EMA codebook step, in place (MISSION.md §1.2), with n = counts [K] and sums = Σ z [K, D]:
//   N_i <- γ N_i + (1-γ) n_i ;  m_i <- γ m_i + (1-γ) Σ_j z_ij ;
//   e_i  = m_i / Ñ_i  with Ñ_i = (N_i + ε) / (Σ_k N_k + K ε) · Σ_k N_k   (Laplace smoothing).
void ema_update(torch::Tensor& cluster_size, torch::Tensor& embed_sum, torch::Tensor& codebook,
                const torch::Tensor& counts, const torch::Tensor& sums, double decay, double epsilon);

// [B, D, H, W] <-> [B*H*W, D]
torch::Tensor flatten_channels_last(const torch::Tensor& z);
torch::Tensor unflatten_channels_last(const torch::Tensor& z, const torch::IntArrayRef& shape);

}  // namespace functional

// What both variants share: nearest-code lookup, straight-through output, usage statistics,
// data initialisation and dead-code restarts. The variants differ in how e learns.
class QuantizerImpl : public torch::nn::Module {
 public:
  explicit QuantizerImpl(const QuantizerOptions& options);

  // z_e [B, D, H, W] -> z_q, codes and losses. In training mode also updates the codebook
  // statistics (EMA variant: the codebook itself) and restarts dead codes — unless z_e holds a NaN or
  // an infinity: such a batch (which the training loop will skip) leaves the quantizer as it was.
  // Computed in fp32 with autocast off whatever the caller's precision (z_e may be bf16 or fp16);
  // every output is fp32.
  QuantizerOutput forward(const torch::Tensor& z_e);

  // codes [B, H, W] -> e_codes [B, D, H, W]; the inverse of forward's quantisation.
  torch::Tensor embed(const torch::Tensor& codes) const;

  virtual const torch::Tensor& codebook() const = 0;  // e [K, D]
  const QuantizerOptions& options() const { return options_; }
  int64_t restarted_codes() const { return restarts_.item<int64_t>(); }

  // Dead-code restarts on (the default) or off. Not stored: a training loop that knows its schedule
  // turns them off for its last steps, so the final codebook is not left with codes moved too
  // late to learn anything.
  void set_restarts_enabled(bool enabled) { restarts_enabled_ = enabled; }
  bool restarts_enabled() const { return restarts_enabled_; }
  // Replicas to agree with (nullptr: this process holds the whole batch). In training, the batch
  // statistics n_i and Σz are then summed over replicas before the codebook moves, and vectors
  // for data initialisation and restarts are drawn once, from the whole batch, by replica 0.
  void set_replicas(std::shared_ptr<const ReplicaSync> replicas) { replicas_ = std::move(replicas); }

  // Everything a training forward pass may write — the codebook (a parameter of the codebook-loss
  // variant, a buffer of the EMA one) and every buffer — copied, and written back. A training loop
  // that skips a batch after its forward pass restores the snapshot taken before it.
  struct State {
    std::vector<torch::Tensor> tensors;
  };
  State snapshot() const;
  void restore(const State& state);

  void pretty_print(std::ostream& stream) const override;

 protected:
  // Moves the codebook towards this batch's statistics: counts n [K] and, for the EMA variant,
  // sums Σz [K, D] (undefined otherwise). No autograd.
  virtual void update(const torch::Tensor& counts, const torch::Tensor& sums) = 0;
  // Sets codes `which` to the vectors `values` [n, D] with usage count N = `count` (data
  // initialisation and restarts).
  virtual void overwrite(const torch::Tensor& which, const torch::Tensor& values, double count) = 0;
  virtual torch::Tensor codebook_loss(const torch::Tensor& z, const torch::Tensor& e_k) const = 0;

  void initialise_from(const torch::Tensor& z);
  void restart_dead_codes(const torch::Tensor& z);
  // Over replicas, the whole batch is [share of replica 0; share of replica 1; ...]. whole_batch:
  // this replica's local [N, ...] placed in the whole [R·N, ...] (itself without replicas).
  // rows_of_whole_batch: rows `picks` (replica 0's) of the whole z, the same on every replica.
  torch::Tensor whole_batch(const torch::Tensor& local) const;
  torch::Tensor rows_of_whole_batch(const torch::Tensor& z, torch::Tensor picks) const;
  int64_t replica_count() const { return replicas_ ? replicas_->replicas : 1; }

  QuantizerOptions options_;
  torch::Tensor cluster_size_;  // N [K]: EMA of how many vectors each code receives per batch
  torch::Tensor initialised_;   // 0/1 scalar: has the codebook been set from data yet
  torch::Tensor restarts_;      // int64 scalar: codes restarted so far
  bool restarts_enabled_ = true;
  std::shared_ptr<const ReplicaSync> replicas_;
};

// VQ-VAE-1: e is a parameter learned by the codebook loss ||sg[z_e] - e||².
class VectorQuantizerImpl : public QuantizerImpl {
 public:
  explicit VectorQuantizerImpl(const QuantizerOptions& options);
  const torch::Tensor& codebook() const override { return codebook_; }

 protected:
  void update(const torch::Tensor& counts, const torch::Tensor& sums) override;
  void overwrite(const torch::Tensor& which, const torch::Tensor& values, double count) override;
  torch::Tensor codebook_loss(const torch::Tensor& z, const torch::Tensor& e_k) const override;

 private:
  torch::Tensor codebook_;
};
TORCH_MODULE(VectorQuantizer);

// VQ-VAE-2: e follows exponential moving averages of the vectors assigned to it (no gradient).
class VectorQuantizerEMAImpl : public QuantizerImpl {
 public:
  explicit VectorQuantizerEMAImpl(const QuantizerOptions& options);
  const torch::Tensor& codebook() const override { return codebook_; }
  const torch::Tensor& embed_sum() const { return embed_sum_; }
  const torch::Tensor& cluster_size() const { return cluster_size_; }

 protected:
  void update(const torch::Tensor& counts, const torch::Tensor& sums) override;
  void overwrite(const torch::Tensor& which, const torch::Tensor& values, double count) override;
  torch::Tensor codebook_loss(const torch::Tensor& z, const torch::Tensor& e_k) const override;

 private:
  torch::Tensor codebook_;   // e [K, D] (buffer)
  torch::Tensor embed_sum_;  // m [K, D] (buffer)
};
TORCH_MODULE(VectorQuantizerEMA);

// The variant options.ema asks for.
std::shared_ptr<QuantizerImpl> make_quantizer(const QuantizerOptions& options);

}  // namespace vqvae2
