#include "vqvae2/training/distributed.h"

#include "vqvae2/core/error.h"

#if defined(VQVAE2_HAVE_GLOO)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#if defined(VQVAE2_HAVE_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace vqvae2 {

// ---- options ------------------------------------------------------------------------------------

void DistributedOptions::validate() const {
  VQVAE2_CHECK(world_size >= 1, "WORLD_SIZE must be at least 1, got {}", world_size);
  VQVAE2_CHECK(rank >= 0 && rank < world_size, "RANK must be in [0, WORLD_SIZE = {}), got {}", world_size, rank);
  VQVAE2_CHECK(local_world_size >= 1 && local_world_size <= world_size,
               "LOCAL_WORLD_SIZE must be in [1, WORLD_SIZE = {}], got {}", world_size, local_world_size);
  VQVAE2_CHECK(local_rank >= 0 && local_rank < local_world_size, "LOCAL_RANK must be in [0, LOCAL_WORLD_SIZE = {}), got {}",
               local_world_size, local_rank);
  VQVAE2_CHECK(master_port >= 1 && master_port <= 65535, "MASTER_PORT must be a TCP port in [1, 65535], got {}",
               master_port);
  VQVAE2_CHECK(!master_addr.empty(), "MASTER_ADDR is empty: give the address where rank 0 listens");
  VQVAE2_CHECK(timeout_seconds > 0, "the distributed timeout must be positive, got {} s", timeout_seconds);
  VQVAE2_CHECK(backend == "auto" || backend == "gloo" || backend == "nccl",
               "unknown distributed backend '{}': use auto, gloo or nccl", backend);
  VQVAE2_CHECK(bucket_mb > 0, "the gradient bucket size must be positive, got {} MiB", bucket_mb);
}

namespace {

const char* environment(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? value : nullptr;
}

int64_t integer_from_environment(const char* name, int64_t fallback) {
  const char* value = environment(name);
  if (!value) return fallback;
  try {
    size_t used = 0;
    const auto parsed = std::stoll(value, &used);
    if (used == std::string(value).size()) return parsed;
  } catch (const std::exception&) {
  }
  fail("the environment variable {} must be an integer, got '{}'", name, value);
}

}  // namespace

DistributedOptions distributed_from_environment() {
  DistributedOptions options;
  options.world_size = integer_from_environment("WORLD_SIZE", 1);
  if (options.world_size > 1) {
    VQVAE2_CHECK(environment("RANK"), "WORLD_SIZE is {} but RANK is not set; set RANK (0..{}) for each process, or "
                 "start them with `vqvae2 launch`", options.world_size, options.world_size - 1);
    VQVAE2_CHECK(environment("MASTER_ADDR") && environment("MASTER_PORT"),
                 "WORLD_SIZE is {} but MASTER_ADDR or MASTER_PORT is not set; set both to where rank 0 listens "
                 "(e.g. MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 on one machine)", options.world_size);
  }
  options.rank = integer_from_environment("RANK", 0);
  options.local_rank = integer_from_environment("LOCAL_RANK", 0);
  options.local_world_size = integer_from_environment("LOCAL_WORLD_SIZE", 1);
  if (const char* addr = environment("MASTER_ADDR")) options.master_addr = addr;
  options.master_port = integer_from_environment("MASTER_PORT", options.master_port);
  options.validate();
  return options;
}

std::string distributed_backends() {
  std::string names;
#if defined(VQVAE2_HAVE_GLOO)
  names = "gloo";
#endif
#if defined(VQVAE2_HAVE_NCCL)
  names += names.empty() ? "nccl" : ", nccl";
#endif
  return names;
}

uint64_t rank_seed(uint64_t seed, int64_t rank) {
  if (rank == 0) return seed;
  // splitmix64 of (seed, rank), as step_seed does for steps.
  uint64_t z = seed ^ (0xD1B54A32D192ED03ull * static_cast<uint64_t>(rank));
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string rank_device(const std::string& device, const DistributedOptions& options) {
  if (device == "cuda" && options.distributed()) return fmt::format("cuda:{}", options.local_rank);
  return device;
}

int threads_per_rank(int cores, int64_t local_ranks) {
  return std::max(1, static_cast<int>(cores / std::max<int64_t>(1, local_ranks)));
}

// ---- the group ----------------------------------------------------------------------------------

void DistributedGroup::lost_contact(const std::string& what, const std::exception& error) const {
  fail("distributed training, rank {} of {}: {} failed: {}. Another rank has probably stopped (it failed, was killed "
       "or hangs; its own error says why); each rank waits at most --dist-timeout {} s for the others.",
       rank(), size(), what, describe(error), options_.timeout_seconds);
}

namespace {

// `tensors` as one flat buffer of their common dtype on `device`.
torch::Tensor flatten(const std::vector<torch::Tensor>& tensors, const torch::Device& device) {
  VQVAE2_CHECK(!tensors.empty(), "nothing to reduce");
  std::vector<torch::Tensor> flat;
  for (const auto& t : tensors) {
    VQVAE2_CHECK(t.scalar_type() == tensors[0].scalar_type(), "tensors reduced together must share a dtype ({} and {})",
                 c10::toString(t.scalar_type()), c10::toString(tensors[0].scalar_type()));
    flat.push_back(t.detach().reshape(-1).to(device));
  }
  return torch::cat(flat);
}

void unflatten(const torch::Tensor& flat, std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (auto& t : tensors) {
    t.copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
    offset += t.numel();
  }
}

}  // namespace

void DistributedGroup::sum(std::vector<torch::Tensor> tensors) {
  if (size() == 1) return;
  auto flat = flatten(tensors, transport_device());
  bytes_reduced_ += flat.numel() * static_cast<int64_t>(flat.element_size());
  run_sum(flat);
  unflatten(flat, tensors);
}

void DistributedGroup::broadcast(std::vector<torch::Tensor> tensors, int64_t root) {
  if (size() == 1) return;
  auto flat = flatten(tensors, transport_device());
  bytes_reduced_ += flat.numel() * static_cast<int64_t>(flat.element_size());
  run_broadcast(flat, root);
  unflatten(flat, tensors);
}

std::vector<double> DistributedGroup::sum(const std::vector<double>& values) {
  if (values.empty()) return values;
  auto t = torch::tensor(values, torch::kDouble);
  sum(std::vector<torch::Tensor>{t});
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

void DistributedGroup::barrier() { sum(std::vector<double>{1.0}); }

void DistributedGroup::on_main(const std::function<void()>& work) {
  if (size() == 1) return work();
  const auto key = fmt::format("vqvae2/on_main/{}", on_main_calls_++);
  const auto beat = std::chrono::milliseconds(
      std::clamp<int64_t>(static_cast<int64_t>(options_.timeout_seconds * 1000 / 4), 10, 5000));
  if (is_main()) {
    // A heartbeat while the work runs, so the others can tell slow from dead.
    std::mutex mutex;
    std::condition_variable changed;
    bool done = false;
    std::thread heartbeat([&] {
      std::unique_lock<std::mutex> lock(mutex);
      while (!done) {
        try {
          store_add(key + "/alive", 1);
        } catch (const std::exception&) {
          return;  // the others are gone; the work finds out at its next collective
        }
        changed.wait_for(lock, beat, [&] { return done; });
      }
    });
    const auto stop_heartbeat = [&] {
      {
        std::lock_guard<std::mutex> lock(mutex);
        done = true;
      }
      changed.notify_all();
      heartbeat.join();
    };
    try {
      work();
    } catch (...) {
      stop_heartbeat();
      // The others read the verdict before rank 0 goes on (and maybe exits, closing the store).
      try {
        store_set(key, "failed");
        barrier();
      } catch (const std::exception&) {
      }
      throw;
    }
    stop_heartbeat();
    try {
      store_set(key, "done");
    } catch (const std::exception& e) {
      lost_contact("telling the other ranks that rank 0's work is done", e);
    }
    barrier();
    return;
  }
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(options_.timeout_seconds * 1000));
  int64_t last_beat = -1;
  auto last_change = std::chrono::steady_clock::now();
  try {
    while (!store_wait(key, beat)) {
      const auto now = std::chrono::steady_clock::now();
      const auto alive = store_add(key + "/alive", 0);
      if (alive != last_beat) {
        last_beat = alive;
        last_change = now;
      } else {
        VQVAE2_CHECK(now - last_change < timeout,
                     "distributed training, rank {} of {}: rank 0 has not reported for --dist-timeout {} s while the "
                     "others waited for it; it hangs or its machine is unreachable",
                     rank(), size(), options_.timeout_seconds);
      }
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    lost_contact("waiting for rank 0", e);
  }
  std::string verdict;
  try {
    verdict = store_get(key);
  } catch (const std::exception& e) {
    lost_contact("reading rank 0's verdict", e);
  }
  if (verdict == "done") return barrier();
  try {
    barrier();
  } catch (const std::exception&) {
  }
  fail("distributed training, rank {} of {}: rank 0 failed (its error says why)", rank(), size());
}

#if defined(VQVAE2_HAVE_GLOO)

namespace {

std::chrono::milliseconds milliseconds(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

std::vector<uint8_t> bytes_of(const std::string& text) { return {text.begin(), text.end()}; }

// A c10d process group of type PG (ProcessGroupGloo, ProcessGroupNCCL): the same calls in LibTorch
// 1.13, where they derive from c10d::ProcessGroup, and in 2.x, where they derive from c10d::Backend.
template <typename PG>
class C10dGroup : public DistributedGroup {
 public:
  C10dGroup(DistributedOptions options, std::string backend, c10::intrusive_ptr<c10d::Store> store,
            c10::intrusive_ptr<PG> group, torch::Device transport)
      : DistributedGroup(std::move(options), std::move(backend)),
        store_(std::move(store)),
        group_(std::move(group)),
        transport_(transport) {}

  torch::Device transport_device() const override { return transport_; }

  class Work : public Pending {
   public:
    Work(C10dGroup* owner, c10::intrusive_ptr<c10d::Work> work, torch::Tensor sent, torch::Tensor target)
        : owner_(owner), work_(std::move(work)), sent_(std::move(sent)), target_(std::move(target)) {}
    void wait() override {
      owner_->complete(work_, "an all-reduce of gradients");
      if (!sent_.is_same(target_)) target_.copy_(sent_);
    }

   private:
    C10dGroup* owner_;
    c10::intrusive_ptr<c10d::Work> work_;
    torch::Tensor sent_, target_;
  };

  std::unique_ptr<Pending> sum_async(torch::Tensor flat) override {
    auto sent = flat.device() == transport_ ? flat : flat.to(transport_);
    bytes_reduced_ += sent.numel() * static_cast<int64_t>(sent.element_size());
    std::vector<torch::Tensor> tensors = {sent};
    try {
      return std::make_unique<Work>(this, group_->allreduce(tensors, c10d::AllreduceOptions()), sent, flat);
    } catch (const std::exception& e) {
      lost_contact("starting an all-reduce", e);
    }
  }

 protected:
  void run_sum(torch::Tensor& flat) override {
    std::vector<torch::Tensor> tensors = {flat};
    c10::intrusive_ptr<c10d::Work> work;
    try {
      work = group_->allreduce(tensors, c10d::AllreduceOptions());
    } catch (const std::exception& e) {
      lost_contact("an all-reduce", e);
    }
    complete(work, "an all-reduce");
  }

  void run_broadcast(torch::Tensor& flat, int64_t root) override {
    std::vector<torch::Tensor> tensors = {flat};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    c10::intrusive_ptr<c10d::Work> work;
    try {
      work = group_->broadcast(tensors, options);
    } catch (const std::exception& e) {
      lost_contact("a broadcast", e);
    }
    complete(work, "a broadcast");
  }

  void store_set(const std::string& key, const std::string& value) override {
    std::lock_guard<std::mutex> lock(store_mutex_);
    store_->set(key, bytes_of(value));
  }
  bool store_wait(const std::string& key, std::chrono::milliseconds timeout) override {
    // Polls with check() (which returns at once) rather than a timed wait(), whose late answer
    // would stay in the socket after a timeout.
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (true) {
      {
        std::lock_guard<std::mutex> lock(store_mutex_);
        if (store_->check({key})) return true;
      }
      if (std::chrono::steady_clock::now() >= until) return false;
      std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(50)));
    }
  }
  std::string store_get(const std::string& key) override {
    std::lock_guard<std::mutex> lock(store_mutex_);
    const auto value = store_->get(key);
    return {value.begin(), value.end()};
  }
  int64_t store_add(const std::string& key, int64_t delta) override {
    std::lock_guard<std::mutex> lock(store_mutex_);
    return store_->add(key, delta);
  }

 private:
  void complete(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) {
    try {
      work->wait(milliseconds(options_.timeout_seconds));
    } catch (const std::exception& e) {
      lost_contact(what, e);
    }
  }

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<PG> group_;
  torch::Device transport_;
  std::mutex store_mutex_;
};

bool is_loopback(const std::string& address) {
  return address == "localhost" || address == "::1" || address.rfind("127.", 0) == 0;
}

}  // namespace

std::shared_ptr<DistributedGroup> DistributedGroup::connect(const DistributedOptions& options, const std::string& device) {
  options.validate();
  const auto on = torch::Device(device);
  auto backend = options.backend;
  if (backend == "auto") backend = on.is_cuda() && distributed_backends().find("nccl") != std::string::npos ? "nccl" : "gloo";
  VQVAE2_CHECK(distributed_backends().find(backend) != std::string::npos,
               "the distributed backend '{}' is not in this build (it has: {}); use --dist-backend gloo", backend,
               distributed_backends());
  const auto timeout = milliseconds(options.timeout_seconds);
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<std::uint16_t>(options.master_port);
    store_options.isServer = options.rank == 0;
    store_options.numWorkers = static_cast<std::size_t>(options.world_size);
    store_options.waitWorkers = true;
    store_options.timeout = timeout;
    store = c10::make_intrusive<c10d::TCPStore>(options.master_addr, store_options);
  } catch (const std::exception& e) {
    fail("distributed training, rank {} of {}: cannot meet the other ranks at {}:{} within --dist-timeout {} s: {}. "
         "Check MASTER_ADDR/MASTER_PORT (rank 0 must be able to listen there, the others to reach it) and that all "
         "{} processes were started.",
         options.rank, options.world_size, options.master_addr, options.master_port, options.timeout_seconds,
         describe(e), options.world_size);
  }
  try {
#if defined(VQVAE2_HAVE_NCCL)
    if (backend == "nccl") {
      // Without asynchronous error handling a dead peer leaves NCCL kernels spinning forever.
      setenv("NCCL_ASYNC_ERROR_HANDLING", "1", /*overwrite=*/0);
      setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1", /*overwrite=*/0);
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout;
      auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, static_cast<int>(options.rank),
                                                               static_cast<int>(options.world_size), nccl_options);
      return std::make_shared<C10dGroup<c10d::ProcessGroupNCCL>>(options, backend, store, group, on);
    }
#endif
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
    // Like torch.distributed: GLOO_SOCKET_IFNAME names the interface; otherwise loopback when rank 0
    // is on this machine's loopback, else the interface this host name resolves to.
    if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface && *interface) {
      gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
    } else if (is_loopback(options.master_addr)) {
      gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(options.rank),
                                                             static_cast<int>(options.world_size), gloo_options);
    return std::make_shared<C10dGroup<c10d::ProcessGroupGloo>>(options, "gloo", store, group, torch::kCPU);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("distributed training, rank {} of {}: cannot meet the other ranks in a {} process group within --dist-timeout "
         "{} s: {}. Check that all {} processes were started and can reach each other (GLOO_SOCKET_IFNAME names the "
         "network interface to use).",
         options.rank, options.world_size, backend, options.timeout_seconds, describe(e), options.world_size);
  }
}

#else

std::shared_ptr<DistributedGroup> DistributedGroup::connect(const DistributedOptions& options, const std::string&) {
  options.validate();
  fail("this vqvae2 was built without c10d's Gloo backend (the Gloo headers were missing), so it runs one process "
       "only; install libgloo-dev and rebuild to train with WORLD_SIZE {}",
       options.world_size);
}

#endif

// ---- gradients ----------------------------------------------------------------------------------

GradientAverager::GradientAverager(std::shared_ptr<DistributedGroup> group, std::vector<torch::Tensor> parameters)
    : group_(std::move(group)) {
  for (auto& p : parameters) {
    if (p.requires_grad()) parameters_.push_back(p);
  }
  const auto cap = static_cast<int64_t>(group_->options().bucket_mb * (1 << 20));
  place_.resize(parameters_.size());
  // Reverse order: backward produces the last layers' gradients first.
  int64_t bytes = cap;
  for (int64_t i = static_cast<int64_t>(parameters_.size()) - 1; i >= 0; --i) {
    const auto& p = parameters_[i];
    VQVAE2_CHECK(p.scalar_type() == torch::kFloat, "data-parallel training averages float parameters only, got {}",
                 c10::toString(p.scalar_type()));
    if (bytes >= cap || p.device() != buckets_.back().flat.device()) {
      buckets_.emplace_back();
      buckets_.back().flat = torch::empty({0}, p.options().requires_grad(false));
      bytes = 0;
    }
    auto& bucket = buckets_.back();
    place_[i] = {static_cast<int64_t>(buckets_.size()) - 1, static_cast<int64_t>(bucket.members.size())};
    bucket.members.push_back(i);
    bucket.offsets.push_back(bucket.flat.numel());
    bucket.flat = torch::empty({bucket.flat.numel() + p.numel()}, bucket.flat.options());
    bytes += p.numel() * static_cast<int64_t>(p.element_size());
  }
  seen_.assign(parameters_.size(), false);
  for (size_t i = 0; i < parameters_.size(); ++i) {
    hooks_.push_back(parameters_[i].register_hook(
        [this, i](const at::TensorBase& grad) { arrived(static_cast<int64_t>(i), torch::Tensor(grad)); }));
  }
}

GradientAverager::~GradientAverager() {
  for (size_t i = 0; i < hooks_.size(); ++i) parameters_[i].remove_hook(hooks_[i]);
}

int64_t GradientAverager::bytes_per_step() const {
  int64_t bytes = 0;
  for (const auto& b : buckets_) bytes += b.flat.numel() * static_cast<int64_t>(b.flat.element_size());
  return bytes;
}

void GradientAverager::prepare() {
  for (auto& b : buckets_) {
    b.missing = static_cast<int64_t>(b.members.size());
    b.pending.reset();
  }
  std::fill(seen_.begin(), seen_.end(), false);
  next_launch_ = 0;
  armed_ = true;
}

void GradientAverager::arrived(int64_t parameter, const torch::Tensor& grad) {
  if (!armed_ || seen_[parameter]) return;
  const auto [b, m] = place_[parameter];
  auto& bucket = buckets_[b];
  const auto& p = parameters_[parameter];
  bucket.flat.narrow(0, bucket.offsets[m], p.numel()).copy_(grad.reshape(-1));
  seen_[parameter] = true;
  --bucket.missing;
  launch_ready();
}

void GradientAverager::launch_ready() {
  // In bucket order only, so that every rank issues the same collectives in the same order.
  while (next_launch_ < buckets() && buckets_[next_launch_].missing == 0) {
    auto& bucket = buckets_[next_launch_++];
    bucket.pending = group_->sum_async(bucket.flat);
  }
}

void GradientAverager::finish() {
  VQVAE2_CHECK(armed_, "GradientAverager::finish without prepare");
  torch::NoGradGuard no_grad;
  // Parameters that received no gradient on this rank contribute zeros.
  for (int64_t b = next_launch_; b < buckets(); ++b) {
    auto& bucket = buckets_[b];
    for (size_t m = 0; m < bucket.members.size(); ++m) {
      const auto i = bucket.members[m];
      if (!seen_[i]) bucket.flat.narrow(0, bucket.offsets[m], parameters_[i].numel()).zero_();
    }
    bucket.missing = 0;
  }
  launch_ready();
  armed_ = false;
  const auto ranks = static_cast<double>(group_->size());
  for (auto& bucket : buckets_) {
    bucket.pending->wait();
    bucket.pending.reset();
    bucket.flat.div_(ranks);
    for (size_t m = 0; m < bucket.members.size(); ++m) {
      auto& p = parameters_[bucket.members[m]];
      const auto average = bucket.flat.narrow(0, bucket.offsets[m], p.numel()).view(p.sizes());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(average);
      } else {
        p.mutable_grad() = average.clone();
      }
    }
  }
}

// ---- quantizers and figures ---------------------------------------------------------------------

std::shared_ptr<const ReplicaSync> quantizer_sync(std::shared_ptr<DistributedGroup> group) {
  auto sync = std::make_shared<ReplicaSync>();
  sync->rank = group->rank();
  sync->replicas = group->size();
  sync->sum = [group](std::vector<torch::Tensor> tensors) { group->sum(std::move(tensors)); };
  sync->broadcast = [group](std::vector<torch::Tensor> tensors) { group->broadcast(std::move(tensors)); };
  return sync;
}

namespace {

void collect_numbers(const nlohmann::json& value, std::vector<double>& out) {
  if (value.is_number()) {
    out.push_back(value.get<double>());
  } else if (value.is_array() || value.is_object()) {
    for (const auto& item : value) collect_numbers(item, out);
  }
}

void replace_numbers(nlohmann::json& value, const std::vector<double>& numbers, size_t& next) {
  if (value.is_number()) {
    value = numbers[next++];
  } else if (value.is_array() || value.is_object()) {
    for (auto& item : value) replace_numbers(item, numbers, next);
  }
}

}  // namespace

bool average_figures(DistributedGroup& group, nlohmann::json& figures, bool flag) {
  std::vector<double> numbers;
  collect_numbers(figures, numbers);
  numbers.push_back(flag ? 1.0 : 0.0);
  numbers = group.sum(numbers);
  for (auto& n : numbers) n /= static_cast<double>(group.size());
  size_t next = 0;
  replace_numbers(figures, numbers, next);
  return numbers.back() > 0;
}

}  // namespace vqvae2
