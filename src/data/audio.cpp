#include "vqvae2/data/audio.h"

#include "vqvae2/core/error.h"
#include "vqvae2/core/files.h"
#include "vqvae2/data/image.h"

#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>

namespace vqvae2 {

namespace fs = std::filesystem;

namespace {

// ---- libsndfile over memory -----------------------------------------------------------------------
// Every file goes through sf_open_virtual: reading decodes a byte buffer (so the fuzzer and the
// data set share one path), writing fills a string that is then written atomically.
struct VirtualFile {
  const uint8_t* data = nullptr;  // reading: the file's bytes
  std::string* out = nullptr;     // writing: the bytes so far
  sf_count_t size = 0;
  sf_count_t position = 0;
};

sf_count_t virtual_length(void* user) {
  const auto* file = static_cast<VirtualFile*>(user);
  return file->out ? static_cast<sf_count_t>(file->out->size()) : file->size;
}

sf_count_t virtual_seek(sf_count_t offset, int whence, void* user) {
  auto* file = static_cast<VirtualFile*>(user);
  sf_count_t base = 0;
  if (whence == SEEK_CUR) base = file->position;
  if (whence == SEEK_END) base = virtual_length(user);
  if (offset < -base || offset > (int64_t{1} << 40)) return -1;  // before the start, or absurdly far
  file->position = base + offset;
  return file->position;
}

sf_count_t virtual_read(void* destination, sf_count_t count, void* user) {
  auto* file = static_cast<VirtualFile*>(user);
  if (count <= 0 || file->position >= file->size) return 0;
  const auto n = std::min(count, file->size - file->position);
  std::memcpy(destination, file->data + file->position, static_cast<size_t>(n));
  file->position += n;
  return n;
}

sf_count_t virtual_write(const void* source, sf_count_t count, void* user) {
  auto* file = static_cast<VirtualFile*>(user);
  if (!file->out || count <= 0) return 0;
  const auto end = static_cast<size_t>(file->position + count);
  if (file->out->size() < end) file->out->resize(end);
  std::memcpy(file->out->data() + file->position, source, static_cast<size_t>(count));
  file->position += count;
  return count;
}

sf_count_t virtual_tell(void* user) { return static_cast<VirtualFile*>(user)->position; }

SF_VIRTUAL_IO virtual_io() { return {virtual_length, virtual_seek, virtual_read, virtual_write, virtual_tell}; }

using SoundFile = std::unique_ptr<SNDFILE, int (*)(SNDFILE*)>;

// libsndfile reads a WAV or AIFF file whose data chunk runs past the end of the file as far as it
// goes, and logs "data : <declared> (should be <present>)" ("SSND" in AIFF). Streaming writers
// (espeak-ng --stdout, ffmpeg to a pipe) declare a placeholder of about 2^31 or 2^32 bytes on
// purpose; only a smaller declared length means the file was cut short. Returns (declared,
// present), or (0, 0) when the data chunk is whole.
std::pair<int64_t, int64_t> short_data_chunk(SNDFILE* sound) {
  std::string log(1 << 14, '\0');
  sf_command(sound, SFC_GET_LOG_INFO, log.data(), static_cast<int>(log.size()));
  log.resize(std::strlen(log.c_str()));
  size_t begin = 0;
  while (begin < log.size()) {
    auto end = log.find('\n', begin);
    if (end == std::string::npos) end = log.size();
    const auto line = log.substr(begin, end - begin);
    begin = end + 1;
    long long declared = 0, present = 0;
    if ((line.rfind("data : ", 0) == 0 || line.rfind("SSND : ", 0) == 0) &&
        std::sscanf(line.c_str() + 7, "%lld (should be %lld)", &declared, &present) == 2 && present < declared &&
        declared < 0x7FFF0000LL) {
      return {declared, present};
    }
  }
  return {0, 0};
}

std::string lower_extension(const fs::path& path) {
  auto extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(), [](unsigned char c) { return std::tolower(c); });
  return extension;
}

// ---- resampling -----------------------------------------------------------------------------------

// Filter weights for output samples whose position t_n lies `fraction` ∈ [0, 1) past input sample
// `base`: taps k = base + j, j = -half+1 … half, at distance u = j - fraction. [M] -> [M, 2·half] (double).
torch::Tensor sinc_weights(const torch::Tensor& fraction, int64_t half, double cutoff, const ResampleOptions& options) {
  const auto j = torch::arange(-half + 1, half + 1, torch::kDouble);
  const auto u = j.unsqueeze(0) - fraction.unsqueeze(1);  // [M, 2·half]
  const double width = static_cast<double>(options.zero_crossings) / cutoff;
  const auto v = (u / width).clamp(-1, 1);
  const auto window = torch::i0(options.kaiser_beta * torch::sqrt(1 - v * v)) / std::cyl_bessel_i(0.0, options.kaiser_beta);
  const auto x = M_PI * cutoff * u;
  const auto sinc = torch::where(x.abs() < 1e-12, torch::ones_like(x), torch::sin(x) / x);
  return (cutoff * sinc * window).masked_fill(u.abs() >= width, 0);
}

// ---- spectrogram colours ------------------------------------------------------------------------

// Matplotlib's "inferno" at 0, 1/4, 1/2, 3/4, 1, interpolated linearly: v [...] in [0, 1] -> uint8 [3, ...].
torch::Tensor inferno(const torch::Tensor& v) {
  static const float anchors[5][3] = {{0, 0, 4}, {87, 16, 110}, {188, 55, 84}, {249, 142, 9}, {252, 255, 164}};
  const auto table = torch::from_blob(const_cast<float*>(&anchors[0][0]), {5, 3}, torch::kFloat).clone();
  const auto scaled = v.clamp(0, 1) * 4;
  const auto lower = scaled.floor().clamp_max(3).to(torch::kLong);
  const auto t = (scaled - lower).unsqueeze(-1);
  const auto colour = table.index({lower}) * (1 - t) + table.index({lower + 1}) * t;  // [..., 3]
  return colour.round().to(torch::kUInt8).movedim(-1, 0);
}

}  // namespace

// ---- decoding -------------------------------------------------------------------------------------

Audio decode_audio(const std::vector<uint8_t>& bytes, const std::string& name, int64_t max_samples) {
  VQVAE2_CHECK(!bytes.empty(), "'{}' is empty: no audio to read", name);
  VirtualFile file{bytes.data(), nullptr, static_cast<sf_count_t>(bytes.size()), 0};
  auto io = virtual_io();
  SF_INFO info{};
  SoundFile sound(sf_open_virtual(&io, SFM_READ, &info, &file), sf_close);
  VQVAE2_CHECK(sound != nullptr,
               "'{}' is not a readable audio file (libsndfile: {}); vqvae2 reads WAV, FLAC, OGG, MP3 and the other "
               "formats libsndfile knows",
               name, sf_strerror(nullptr));
  VQVAE2_CHECK(info.channels >= 1, "'{}' declares {} channels", name, info.channels);
  VQVAE2_CHECK(info.samplerate >= kMinSampleRate && info.samplerate <= kMaxSampleRate,
               "'{}' declares a sample rate of {} Hz; vqvae2 reads {} Hz to {} Hz", name, info.samplerate,
               kMinSampleRate, kMaxSampleRate);
  const int64_t channels = info.channels;
  constexpr sf_count_t kChunkFrames = 8192;
  std::vector<float> chunk(static_cast<size_t>(kChunkFrames * channels));
  std::vector<float> samples;
  while (true) {
    const auto frames = sf_readf_float(sound.get(), chunk.data(), kChunkFrames);
    if (frames <= 0) break;
    VQVAE2_CHECK(static_cast<int64_t>(samples.size()) + frames * channels <= max_samples,
                 "'{}' holds more than {} M samples; cut it into shorter files first", name, max_samples >> 20);
    samples.insert(samples.end(), chunk.begin(), chunk.begin() + frames * channels);
  }
  const int64_t frames = static_cast<int64_t>(samples.size()) / channels;
  const auto error = sf_error(sound.get());
  VQVAE2_CHECK(error == SF_ERR_NO_ERROR, "'{}' is damaged: decoding stopped after {} frames (libsndfile: {})", name,
               frames, sf_error_number(error));
  VQVAE2_CHECK(info.frames <= 0 || info.frames == SF_COUNT_MAX || frames >= info.frames,
               "'{}' is truncated: its header promises {} frames but only {} could be decoded", name, info.frames,
               frames);
  if (const auto [declared, present] = short_data_chunk(sound.get()); declared > 0) {
    fail("'{}' is truncated: its data chunk declares {} bytes but the file holds only {}", name, declared, present);
  }
  VQVAE2_CHECK(frames > 0, "'{}' holds no audio (0 frames)", name);
  auto interleaved = torch::from_blob(samples.data(), {frames, channels}, torch::kFloat);
  VQVAE2_CHECK(torch::isfinite(interleaved).all().item<bool>(), "'{}' holds NaN or infinite samples", name);
  return {interleaved.t().clamp(-1, 1).contiguous(), info.samplerate};  // [C, T]; the clamp copies
}

Audio read_audio(const std::string& path) { return decode_audio(read_file(path), path); }

torch::Tensor to_mono(const torch::Tensor& samples) {
  VQVAE2_CHECK(samples.dim() == 2 && samples.size(0) >= 1, "to_mono expects samples [C, T], got {}",
               shape_of(samples.sizes()));
  return samples.size(0) == 1 ? samples[0] : samples.mean(0);
}

torch::Tensor load_audio(const std::string& path, int64_t sample_rate) {
  const auto audio = read_audio(path);
  return resample(to_mono(audio.samples), audio.sample_rate, sample_rate);
}

// ---- resampling -----------------------------------------------------------------------------------

torch::Tensor resample(const torch::Tensor& x, int64_t from_rate, int64_t to_rate, const ResampleOptions& options) {
  VQVAE2_CHECK(x.dim() == 1 || x.dim() == 2, "resample expects samples [T] or [C, T], got {}", shape_of(x.sizes()));
  VQVAE2_CHECK(from_rate >= kMinSampleRate && from_rate <= kMaxSampleRate && to_rate >= kMinSampleRate &&
                   to_rate <= kMaxSampleRate,
               "sample rates must be in [{}, {}] Hz, got {} Hz -> {} Hz", kMinSampleRate, kMaxSampleRate, from_rate,
               to_rate);
  VQVAE2_CHECK(options.zero_crossings >= 1 && options.zero_crossings <= 1024 && options.rolloff > 0 &&
                   options.rolloff <= 1 && options.kaiser_beta >= 0,
               "resampling needs 1 to 1024 zero crossings, a roll-off in (0, 1] and a Kaiser beta >= 0");
  if (from_rate == to_rate) return x.to(torch::kFloat).clone();
  const auto g = std::gcd(from_rate, to_rate);
  const int64_t from = from_rate / g, to = to_rate / g;  // t_n = n · from / to input samples
  const double cutoff = options.rolloff * std::min(1.0, static_cast<double>(to_rate) / from_rate);
  const auto half = static_cast<int64_t>(std::ceil(options.zero_crossings / cutoff));  // taps per side
  const auto T = x.size(-1);
  const auto outputs = (T * to + from - 1) / from;  // ceil(T · to / from)
  VQVAE2_CHECK(outputs <= kMaxAudioSamples, "resampling {} samples from {} Hz to {} Hz would make more than {} M samples",
               T, from_rate, to_rate, kMaxAudioSamples >> 20);
  const auto input = x.to(torch::kDouble).reshape({-1, T});
  // Zero-padded so taps base-half+1 … base+half always index inside: padded[k + half] = x[k].
  const auto padded = torch::constant_pad_nd(input, {half, half + 1}, 0);
  // The weights depend only on the phase n mod `to`: tabulate them once when there are few phases.
  const bool tabulate = to <= 4096;
  const auto table = tabulate ? sinc_weights(torch::arange(to, torch::kDouble) / to, half, cutoff, options)
                              : torch::Tensor();
  const auto taps = torch::arange(-half + 1, half + 1, torch::kLong) + half;
  const int64_t block = std::max<int64_t>(256, (int64_t{1} << 21) / (2 * half));  // ≤ 16 MiB of taps at a time
  std::vector<torch::Tensor> blocks;
  for (int64_t start = 0; start < outputs; start += block) {
    const auto n = torch::arange(start, std::min(outputs, start + block), torch::kLong);
    const auto numerator = n * from;
    const auto base = numerator.div(to, "floor");  // ⌊t_n⌋
    const auto phase = numerator - base * to;       // t_n - ⌊t_n⌋ = phase / to
    const auto weights = tabulate ? table.index_select(0, phase)
                                  : sinc_weights(phase.to(torch::kDouble) / to, half, cutoff, options);  // [M, 2·half]
    const auto index = (base.unsqueeze(1) + taps.unsqueeze(0)).reshape(-1);
    const auto window = padded.index_select(1, index).view({padded.size(0), n.size(0), 2 * half});
    blocks.push_back((window * weights.unsqueeze(0)).sum(-1));  // [C, M]
  }
  auto y = blocks.empty() ? torch::zeros({input.size(0), 0}, torch::kDouble) : torch::cat(blocks, 1);
  y = y.to(torch::kFloat);
  return x.dim() == 1 ? y[0] : y;
}

// ---- clips ----------------------------------------------------------------------------------------

int64_t clip_count(int64_t samples, int64_t clip_length) {
  VQVAE2_CHECK(clip_length >= 1, "clip length must be positive, got {}", clip_length);
  const auto full = samples / clip_length, rest = samples % clip_length;
  return full + (rest > 0 && (4 * rest >= clip_length || full == 0) ? 1 : 0);
}

torch::Tensor cut_clips(const torch::Tensor& waveform, int64_t clip_length) {
  VQVAE2_CHECK(waveform.dim() == 1, "cut_clips expects a waveform [T], got {}", shape_of(waveform.sizes()));
  const auto n = clip_count(waveform.size(0), clip_length);
  const auto padded = torch::constant_pad_nd(waveform, {0, std::max<int64_t>(0, n * clip_length - waveform.size(0))}, 0);
  return padded.slice(0, 0, n * clip_length).reshape({n, clip_length});
}

// ---- writing --------------------------------------------------------------------------------------

std::string encode_wav(const torch::Tensor& samples, int64_t sample_rate) {
  VQVAE2_CHECK(samples.dim() == 1 || (samples.dim() == 2 && samples.size(0) >= 1 && samples.size(0) <= 1024),
               "encode_wav expects samples [T] or [C, T] with 1 to 1024 channels, got {}", shape_of(samples.sizes()));
  VQVAE2_CHECK(sample_rate >= kMinSampleRate && sample_rate <= kMaxSampleRate, "sample rate must be in [{}, {}] Hz, got {}",
               kMinSampleRate, kMaxSampleRate, sample_rate);
  const auto channels = samples.dim() == 1 ? 1 : samples.size(0);
  // 16-bit PCM: s = round(32768 x) clipped to [-32768, 32767], which libsndfile reads back as s / 32768.
  const auto pcm = (samples.detach().to(torch::kCPU, torch::kFloat).reshape({channels, -1}).t() * 32768.0f)
                       .round()
                       .clamp(-32768, 32767)
                       .to(torch::kShort)
                       .contiguous();  // [T, C] interleaved
  std::string bytes;
  VirtualFile file{nullptr, &bytes, 0, 0};
  auto io = virtual_io();
  SF_INFO info{};
  info.samplerate = static_cast<int>(sample_rate);
  info.channels = static_cast<int>(channels);
  info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  {
    SoundFile sound(sf_open_virtual(&io, SFM_WRITE, &info, &file), sf_close);
    VQVAE2_CHECK(sound != nullptr, "cannot encode WAV: {}", sf_strerror(nullptr));
    const auto frames = pcm.size(0);
    VQVAE2_CHECK(sf_writef_short(sound.get(), pcm.data_ptr<int16_t>(), frames) == frames, "cannot encode WAV: {}",
                 sf_strerror(sound.get()));
  }  // sf_close writes the final header
  return bytes;
}

void save_wav(const std::string& path, const torch::Tensor& samples, int64_t sample_rate) {
  write_file_atomically(path, encode_wav(samples, sample_rate));
}

// ---- spectrograms ---------------------------------------------------------------------------------

torch::Tensor stft_magnitude(const torch::Tensor& x, int64_t fft, int64_t hop, double floor) {
  VQVAE2_CHECK(x.dim() >= 1 && x.size(-1) >= 1, "stft_magnitude expects samples [..., T], got {}", shape_of(x.sizes()));
  VQVAE2_CHECK(fft >= 2 && hop >= 1, "STFT needs fft >= 2 and hop >= 1, got fft {} and hop {}", fft, hop);
  const auto flat = x.reshape({-1, x.size(-1)});
  const auto window = torch::hann_window(fft, torch::TensorOptions().dtype(x.scalar_type()).device(x.device()));
  const auto spectrum = torch::stft(flat, fft, hop, fft, window, /*center=*/true, /*pad_mode=*/"constant",
                                    /*normalized=*/false, /*onesided=*/true, /*return_complex=*/true);
  // |X| = sqrt(max(re² + im², floor²)): the floor keeps the gradient of silent bins finite.
  const auto power = torch::view_as_real(spectrum).pow(2).sum(-1);  // [M, F, frames]
  auto sizes = x.sizes().vec();
  sizes.pop_back();
  sizes.push_back(power.size(1));
  sizes.push_back(power.size(2));
  return power.clamp_min(floor * floor).sqrt().reshape(sizes);
}

torch::Tensor spectrogram_sheet(const torch::Tensor& originals, const torch::Tensor& reconstructions, int64_t fft,
                                int64_t hop) {
  VQVAE2_CHECK(originals.dim() == 2 && originals.sizes() == reconstructions.sizes() && originals.size(0) >= 1,
               "spectrograms need originals and reconstructions of one shape [N, T], got {} and {}",
               shape_of(originals.sizes()), shape_of(reconstructions.sizes()));
  return spectrogram_rows({originals, reconstructions}, fft, hop);
}

torch::Tensor spectrogram_rows(const std::vector<torch::Tensor>& rows, int64_t fft, int64_t hop) {
  VQVAE2_CHECK(!rows.empty() && rows[0].dim() == 2 && rows[0].size(0) >= 1,
               "spectrograms need rows of clips [N, T], got {}", rows.empty() ? "none" : shape_of(rows[0].sizes()));
  for (const auto& row : rows) {
    VQVAE2_CHECK(row.sizes() == rows[0].sizes(), "spectrogram rows must have one shape [N, T], got {} and {}",
                 shape_of(rows[0].sizes()), shape_of(row.sizes()));
  }
  torch::NoGradGuard no_grad;
  const auto all = torch::cat(rows).detach().to(torch::kCPU, torch::kFloat);
  const auto decibels = 20 * torch::log10(stft_magnitude(all, fft, hop, /*floor=*/1e-7));  // [R·N, F, frames]
  const auto top = decibels.max().item<float>();
  constexpr float kRange = 80;  // dB shown, below the loudest bin
  const auto level = ((decibels - (top - kRange)) / kRange).flip({1});  // low frequencies at the bottom
  const auto images = inferno(level).permute({1, 0, 2, 3});  // [R·N, 3, F, frames]
  return make_grid(images, /*columns=*/rows[0].size(0));
}

void save_spectrograms(const std::string& path, const torch::Tensor& originals, const torch::Tensor& reconstructions,
                       int64_t fft, int64_t hop) {
  save_png(path, spectrogram_sheet(originals, reconstructions, fft, hop));
}

// ---- the data set ---------------------------------------------------------------------------------

void AudioDataOptions::validate() const {
  VQVAE2_CHECK(sample_rate >= kMinSampleRate && sample_rate <= kMaxSampleRate, "sample rate must be in [{}, {}] Hz, got {}",
               kMinSampleRate, kMaxSampleRate, sample_rate);
  VQVAE2_CHECK(clip_length >= 1 && clip_length <= (int64_t{1} << 24), "clip length must be in [1, 16777216] samples, got {}",
               clip_length);
  VQVAE2_CHECK(validation_fraction >= 0 && validation_fraction < 1,
               "validation fraction must be in [0, 1), got {}", validation_fraction);
  VQVAE2_CHECK(limit >= 0, "file limit must be >= 0 (0 = all), got {}", limit);
  VQVAE2_CHECK(cache_mb >= 0, "cache size must be >= 0 MiB, got {}", cache_mb);
}

const std::vector<std::string>& audio_extensions() {
  static const std::vector<std::string> extensions = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3",
                                                      ".aif", ".aiff", ".au",  ".w64", ".caf"};
  return extensions;
}

std::shared_ptr<AudioDataset> AudioDataset::open(const AudioDataOptions& options, std::ostream* warnings) {
  options.validate();
  std::shared_ptr<AudioDataset> dataset(new AudioDataset(options));
  dataset->warnings_ = warnings;
  const fs::path root(options.folder);
  std::error_code error;
  VQVAE2_CHECK(!options.folder.empty(), "give a folder of audio files (WAV, FLAC, OGG, MP3)");
  VQVAE2_CHECK(fs::exists(root, error), "audio folder '{}' does not exist", options.folder);
  VQVAE2_CHECK(fs::is_directory(root, error), "'{}' is not a folder; --data takes a folder of audio files",
               options.folder);
  std::vector<fs::path> paths;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    if (it->is_regular_file(error)) paths.push_back(it->path());
  }
  VQVAE2_CHECK(!error, "cannot list '{}': {}", options.folder, error.message());
  std::sort(paths.begin(), paths.end());
  const auto& extensions = audio_extensions();
  for (const auto& path : paths) {
    if (options.limit > 0 && dataset->files() >= options.limit) break;
    const auto name = fs::relative(path, root, error).string();
    if (std::find(extensions.begin(), extensions.end(), lower_extension(path)) == extensions.end()) {
      ++dataset->ignored_;
      continue;
    }
    try {
      const auto waveform = load_audio(path.string(), options.sample_rate);
      const auto file = dataset->files();
      const auto clips = clip_count(waveform.size(0), options.clip_length);
      dataset->files_.push_back({name, path.string(), waveform.size(0)});
      for (int64_t c = 0; c < clips; ++c) dataset->clips_.push_back({file, c * options.clip_length});
      dataset->cache_.push_back({});
      dataset->broken_.push_back(false);
      dataset->cache(file, waveform);
    } catch (const Error& e) {
      VQVAE2_CHECK(options.skip_bad_files, "{} (pass --on-bad-file skip to leave such files out)", e.what());
      dataset->skipped_.push_back(name);
      if (warnings) *warnings << "warning: skipping " << e.what() << "\n";
    }
  }
  if (warnings && (!dataset->skipped_.empty() || dataset->ignored_ > 0)) {
    *warnings << fmt::format("warning: '{}': {} unreadable audio files skipped, {} non-audio files ignored\n",
                             options.folder, dataset->skipped_.size(), dataset->ignored_);
  }
  VQVAE2_CHECK(!dataset->clips_.empty(),
               "no readable audio in '{}' ({} files skipped as unreadable, {} without an audio extension); "
               "vqvae2 reads {}",
               options.folder, dataset->skipped_.size(), dataset->ignored_, fmt::join(extensions, " "));
  return dataset;
}

void AudioDataset::cache(int64_t file, const torch::Tensor& waveform) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto bytes = waveform.numel() * static_cast<int64_t>(sizeof(float));
  if (!cache_[file].defined() && cache_bytes_ + bytes <= options_.cache_mb * (int64_t{1} << 20)) {
    cache_[file] = waveform;
    cache_bytes_ += bytes;
  }
}

torch::Tensor AudioDataset::waveform(int64_t file) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cache_[file].defined()) return cache_[file];
  }
  const auto& entry = files_[file];
  auto waveform = load_audio(entry.path, options_.sample_rate);
  VQVAE2_CHECK(waveform.size(0) == entry.samples,
               "'{}' changed since the folder was scanned ({} samples then, {} now); open the data set again",
               entry.path, entry.samples, waveform.size(0));
  cache(file, waveform);
  return waveform;
}

torch::Tensor AudioDataset::clip(int64_t index) const {
  const auto& clip = clips_[index];
  const auto waveform = this->waveform(clip.file);
  const auto end = std::min(waveform.size(0), clip.offset + options_.clip_length);
  const auto part = waveform.slice(0, clip.offset, end);
  return torch::constant_pad_nd(part, {0, options_.clip_length - part.size(0)}, 0).unsqueeze(0);  // [1, T]
}

torch::Tensor AudioDataset::get(int64_t index) const {
  VQVAE2_CHECK(index >= 0 && index < size(), "clip index {} out of range [0, {})", index, size());
  for (int64_t step = 0; step < size(); ++step) {
    const auto candidate = (index + step) % size();
    const auto file = clips_[candidate].file;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (broken_[file]) continue;
    }
    try {
      return clip(candidate);
    } catch (const Error& e) {
      if (!options_.skip_bad_files) throw;
      std::lock_guard<std::mutex> lock(mutex_);
      if (!broken_[file] && warnings_) *warnings_ << "warning: skipping " << e.what() << "\n";
      broken_[file] = true;
    }
  }
  fail("none of the {} audio files in '{}' can be decoded any more", files(), options_.folder);
}

double AudioDataset::seconds() const {
  int64_t samples = 0;
  for (const auto& file : files_) samples += file.samples;
  return static_cast<double>(samples) / options_.sample_rate;
}

std::string AudioDataset::describe() const {
  const auto total = seconds() < 60 ? fmt::format("{:.1f} s", seconds()) : fmt::format("{:.1f} min", seconds() / 60);
  auto text = fmt::format("{} clips of {:.3f} s from {} audio files in '{}' ({} at {} Hz)", size(),
                          static_cast<double>(options_.clip_length) / options_.sample_rate, files(), options_.folder,
                          total, options_.sample_rate);
  if (!skipped_.empty()) text += fmt::format(", {} unreadable files skipped", skipped_.size());
  if (ignored_ > 0) text += fmt::format(", {} non-audio files ignored", ignored_);
  return text;
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> AudioDataset::split() const {
  std::vector<std::string> names;
  for (const auto& file : files_) names.push_back(file.name);
  const auto [train_files, validation_files] = split_by_name(names, options_.validation_fraction, options_.split_seed);
  std::vector<bool> held_out(files_.size(), false);
  for (const auto f : validation_files) held_out[f] = true;
  std::vector<int64_t> train, validation;
  for (int64_t c = 0; c < size(); ++c) (held_out[clips_[c].file] ? validation : train).push_back(c);
  VQVAE2_CHECK(!train.empty(), "no audio files left for training after holding out {:.0f}% for validation",
               100 * options_.validation_fraction);
  return {train, validation};
}

}  // namespace vqvae2
