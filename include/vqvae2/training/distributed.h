// Data-parallel training on PyTorch's own distributed engine, c10d: N cooperating processes, one
// replica of the model each, that together compute what one process would on the whole batch.
//
// Glossary: R = ranks (processes, WORLD_SIZE), r = this process's rank, B = the global batch (the
// schedule's batch size, images per step over all ranks), B/R = one rank's share of it.
//
// What keeps the replicas identical (the "one big batch" contract):
//   - the schedule is global: batch size, steps and epochs count images and steps over all ranks, so
//     a run resumes with any R that divides B;
//   - each global batch is split in rank order: rank r takes rows [r·B/R, (r+1)·B/R) of it, so every
//     image is seen once per epoch across ranks and the ranks' shards, concatenated, are the batch
//     one process would see;
//   - gradients are averaged by all-reduce in buckets launched while backward is still running
//     (GradientAverager; equal shards make the average of per-rank means the global mean);
//   - the quantizers' batch statistics (counts n_i, sums Σz) are summed over ranks before the EMA
//     update, and codes restarted from data are picked once, by rank 0 (quantizer_sync);
//   - rank 0's state is broadcast once at the start; random streams are per rank, from seed and rank
//     (rank_seed), rank 0's being the single-process stream (so dropout masks differ from one
//     process's: with dropout, R processes and one agree in distribution, without it to float rounding);
//   - only rank 0 writes checkpoints, metrics and grids; all ranks agree on stopping (a signal to any
//     one of them) and on skipping a non-finite loss, so they stop at the same step.
// A rank that dies or stops answering makes every collective of the others fail within the timeout
// (--dist-timeout), with an error that says so; nothing waits forever.
//
// Rendezvous follows PyTorch's convention (torchrun, Slurm wrappers): RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT. Rank 0 hosts the c10d TCPStore; Gloo carries the
// tensors on CPU, NCCL on CUDA where LibTorch was built with it.
#pragma once

#include "vqvae2/models/quantizer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace vqvae2 {

struct DistributedOptions {
  int64_t rank = 0;              // r, in [0, R)
  int64_t world_size = 1;        // R
  int64_t local_rank = 0;        // rank among the processes of this machine (its GPU, its share of cores)
  int64_t local_world_size = 1;  // processes on this machine
  std::string master_addr = "127.0.0.1";  // where rank 0 listens
  int64_t master_port = 29500;
  double timeout_seconds = 300;  // longest wait for another rank before failing (--dist-timeout)
  std::string backend = "auto";  // gloo, nccl, or auto: nccl for CUDA devices where built, else gloo
  double bucket_mb = 4;          // gradient bucket size: smaller buckets start reducing earlier in backward

  bool distributed() const { return world_size > 1; }
  void validate() const;
};

// The options the environment gives (unset: one process). Throws vqvae2::Error on malformed values.
DistributedOptions distributed_from_environment();

// Whether this build can run several processes: "gloo", "gloo, nccl", or "" (no c10d backend).
std::string distributed_backends();

// A seed for rank `rank` of a run seeded with `seed`: rank 0 keeps `seed` (so its random draws are
// those of a single process), the others get unrelated streams.
uint64_t rank_seed(uint64_t seed, int64_t rank);

// The device a rank trains on: "cuda" becomes "cuda:<local rank>" (one GPU per local rank).
std::string rank_device(const std::string& device, const DistributedOptions& options);

// LibTorch threads for one of `local_ranks` processes sharing `cores`: its share, at least one.
// OpenMP barriers under oversubscription are pathological, so ranks never take every core each.
int threads_per_rank(int cores, int64_t local_ranks);

// A group of R cooperating processes (a c10d process group and the store it met through).
// Collectives are called by every rank in the same order; each either completes on all ranks or
// throws vqvae2::Error within the timeout.
class DistributedGroup {
 public:
  // Meets the other ranks (rank 0 listens on master_addr:master_port). `device` is where training
  // runs; with NCCL, tensors travel on it.
  static std::shared_ptr<DistributedGroup> connect(const DistributedOptions& options, const std::string& device);
  virtual ~DistributedGroup() = default;

  const DistributedOptions& options() const { return options_; }
  int64_t rank() const { return options_.rank; }
  int64_t size() const { return options_.world_size; }
  bool is_main() const { return options_.rank == 0; }
  std::string backend() const { return backend_; }

  // Element-wise sums over ranks, in place. Tensors of one dtype, any shapes and devices; they travel
  // as one flat buffer.
  void sum(std::vector<torch::Tensor> tensors);
  // Rank `root`'s values, in place, on every rank.
  void broadcast(std::vector<torch::Tensor> tensors, int64_t root = 0);
  // Sums of plain numbers over ranks (in double precision).
  std::vector<double> sum(const std::vector<double>& values);
  void barrier();

  // Runs `work` on rank 0 while the others wait for it, for as long as it takes while rank 0 is
  // alive (it reports in every few seconds; the others fail after the timeout without a report).
  // Rank 0's exception is rethrown there; the others fail saying rank 0 failed.
  void on_main(const std::function<void()>& work);

  // Bytes this process has sent into all-reduce and broadcast collectives so far.
  int64_t bytes_reduced() const { return bytes_reduced_; }

  // One asynchronous all-reduce (sum) of a flat tensor, for GradientAverager; wait() completes it.
  class Pending {
   public:
    virtual ~Pending() = default;
    virtual void wait() = 0;
  };
  virtual std::unique_ptr<Pending> sum_async(torch::Tensor flat) = 0;

 protected:
  DistributedGroup(DistributedOptions options, std::string backend)
      : options_(std::move(options)), backend_(std::move(backend)) {}
  virtual torch::Device transport_device() const = 0;  // where tensors travel (CPU for Gloo)
  virtual void run_sum(torch::Tensor& flat) = 0;
  virtual void run_broadcast(torch::Tensor& flat, int64_t root) = 0;
  // Key-value store of the rendezvous, for on_main.
  virtual void store_set(const std::string& key, const std::string& value) = 0;
  virtual bool store_wait(const std::string& key, std::chrono::milliseconds timeout) = 0;  // false: timed out
  virtual std::string store_get(const std::string& key) = 0;
  virtual int64_t store_add(const std::string& key, int64_t delta) = 0;
  [[noreturn]] void lost_contact(const std::string& what, const std::exception& error) const;

  DistributedOptions options_;
  std::string backend_;
  int64_t bytes_reduced_ = 0;
  int64_t on_main_calls_ = 0;
};

// Averages the gradients of `parameters` over the ranks of `group`, as DistributedDataParallel does:
// parameters are packed into buckets of about bucket_mb in reverse order (the order backward reaches
// them); a hook on each parameter copies its gradient into its bucket, and a full bucket is
// all-reduced asynchronously while backward goes on. Buckets are launched in a fixed order, so every
// rank issues the same collectives; a parameter that received no gradient counts as zero.
//   averager.prepare(); loss.backward(); averager.finish();  // then the optimiser step
class GradientAverager {
 public:
  GradientAverager(std::shared_ptr<DistributedGroup> group, std::vector<torch::Tensor> parameters);
  ~GradientAverager();
  GradientAverager(const GradientAverager&) = delete;
  GradientAverager& operator=(const GradientAverager&) = delete;

  void prepare();  // before backward
  void finish();   // after backward: waits for every bucket, writes the averages into .grad()

  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }
  int64_t bytes_per_step() const;  // bytes all-reduced per step

 private:
  struct Bucket {
    std::vector<int64_t> members;  // parameter indices
    std::vector<int64_t> offsets;  // element offset of each member in `flat`
    torch::Tensor flat;            // [Σ numel] float
    int64_t missing = 0;           // members whose gradient has not arrived this step
    std::unique_ptr<DistributedGroup::Pending> pending;
  };
  void arrived(int64_t parameter, const torch::Tensor& grad);
  void launch_ready();

  std::shared_ptr<DistributedGroup> group_;
  std::vector<torch::Tensor> parameters_;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<int64_t, int64_t>> place_;  // parameter -> (bucket, member)
  std::vector<bool> seen_;
  std::vector<unsigned> hooks_;
  int64_t next_launch_ = 0;
  bool armed_ = false;
};

// The agreement of a quantizer's replicas (models/quantizer.h) over `group`.
std::shared_ptr<const ReplicaSync> quantizer_sync(std::shared_ptr<DistributedGroup> group);

// Mean over ranks of every number in `figures` (nested arrays included), in place; `flag` is
// or-ed over ranks and returned. One small all-reduce; every rank's figures have the same shape.
bool average_figures(DistributedGroup& group, nlohmann::json& figures, bool flag);

}  // namespace vqvae2
