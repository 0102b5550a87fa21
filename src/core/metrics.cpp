#include "vqvae2/core/metrics.h"

#include "vqvae2/core/files.h"
#include "vqvae2/core/error.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

namespace vqvae2 {

MetricsLog::MetricsLog(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  VQVAE2_CHECK(fd_ >= 0, "cannot open metrics log '{}': {}", path, std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsLog::write(const nlohmann::json& record) {
  if (fd_ < 0) return;
  const auto line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  size_t done = 0;
  while (done < line.size()) {
    const auto n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    VQVAE2_CHECK(n > 0, "cannot write metrics log '{}': {}", path_, std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

void MetricsLog::truncate_after(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in.good()) return;
  std::ostringstream kept;
  std::string line;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline: a line cut short by a kill
    const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_discarded()) continue;
    if (record.contains("step") && record["step"].is_number() && record["step"].get<int64_t>() > step) continue;
    kept << line << "\n";
  }
  write_file_atomically(path, kept.str());
}

double psnr_from_mse(double mse) { return 10.0 * std::log10(4.0 / std::max(mse, 1e-12)); }

double bits_from_nats(double nats) { return nats / std::log(2.0); }

}  // namespace vqvae2
