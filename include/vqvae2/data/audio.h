// Audio files in and out, resampling, clips, spectrograms, and the audio data set (MISSION.md §1.6).
//
// Files are read and written through libsndfile (WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF and the
// other formats it knows). Tensors here hold float samples in [-1, 1]: [C, T] for a file's
// channels, [T] for a mono waveform, [N, T] for clips. The model sees mono clips [B, 1, T].
//
// Glossary: T = samples (frames), C = channels of a file, fs = sample rate (Hz), N = clips.
#pragma once

#include "vqvae2/data/data.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

namespace vqvae2 {

// Most samples (frames × channels) we decode from one file: 2^28, e.g. 93 minutes of 48 kHz stereo.
// A longer file (or a compressed one that would expand beyond it) is refused, not truncated.
constexpr int64_t kMaxAudioSamples = int64_t{1} << 28;
// Sample rates we accept in files and ask for.
constexpr int64_t kMinSampleRate = 1000, kMaxSampleRate = 1'000'000;

// A decoded file: samples float [C, T] in [-1, 1] (beyond full scale clipped) at the file's rate.
struct Audio {
  torch::Tensor samples;
  int64_t sample_rate = 0;
};

// Decodes the bytes of an audio file (`name` is used in messages). Throws vqvae2::Error, one line
// naming the file and the reason, on anything that is not readable audio: unknown or damaged
// format, no samples, a sample rate outside [kMinSampleRate, kMaxSampleRate], non-finite samples,
// a decoding error part-way, more than `max_samples` samples.
Audio decode_audio(const std::vector<uint8_t>& bytes, const std::string& name,
                   int64_t max_samples = kMaxAudioSamples);
Audio read_audio(const std::string& path);

// [C, T] -> [T]: the mean of the channels.
torch::Tensor to_mono(const torch::Tensor& samples);

// Band-limited resampling by windowed-sinc interpolation (a Kaiser-windowed ideal low-pass):
//   y[n] = Σ_k x[k] · f_c · sinc(f_c (t_n − k)) · w((t_n − k) / h),   t_n = n · fs_in / fs_out,
// with f_c = rolloff · min(1, fs_out / fs_in) the cut-off in cycles per two input samples (1 = the
// input's Nyquist), sinc(u) = sin(πu)/(πu), h = zero_crossings / f_c input samples on each side,
// w(v) = I0(β √(1 − v²)) / I0(β) for |v| ≤ 1 (0 beyond), and x = 0 outside [0, T). When going
// down, everything above rolloff × the new Nyquist is removed before it could alias; going up,
// the same filter removes the spectral images. t_n is split exactly into an integer sample and a
// fraction with the rates reduced by their gcd, so the filter weights depend only on n mod fs_out'.
struct ResampleOptions {
  int64_t zero_crossings = 32;  // filter half-width in zero crossings of the sinc
  double rolloff = 0.945;       // cut-off as a fraction of the lower Nyquist frequency
  double kaiser_beta = 12.0;    // window shape: larger = lower side lobes, wider transition
};
// x [T] or [C, T] float at `from_rate` -> [ceil(T · to_rate / from_rate)] or [C, …] at `to_rate`.
torch::Tensor resample(const torch::Tensor& x, int64_t from_rate, int64_t to_rate,
                       const ResampleOptions& options = {});

// Reads a file, mixes it to mono and resamples it: float [T] at `sample_rate`.
torch::Tensor load_audio(const std::string& path, int64_t sample_rate);

// [T] -> [N, clip_length]: consecutive clips. The last, partial clip is zero-padded when it holds at
// least a quarter of a clip or is the only one (a short recording still gives one clip), otherwise
// dropped. An empty waveform gives [0, clip_length].
torch::Tensor cut_clips(const torch::Tensor& waveform, int64_t clip_length);
// How many clips cut_clips makes from `samples` samples.
int64_t clip_count(int64_t samples, int64_t clip_length);

// samples [T] or [C, T] -> a 16-bit PCM WAV file's bytes (values beyond [-1, 1] clipped).
std::string encode_wav(const torch::Tensor& samples, int64_t sample_rate);
// The same written to `path`, atomically (temporary file, then rename).
void save_wav(const std::string& path, const torch::Tensor& samples, int64_t sample_rate);

// Short-time Fourier transform magnitudes |STFT(x)|: x [..., T] -> [..., fft/2 + 1, frames], with a
// periodic Hann window of `fft` samples, `hop` samples apart, the signal zero-padded by fft/2 at
// both ends (frame m is centred on sample m·hop). Floored at `floor` so its log stays finite and
// differentiable.
torch::Tensor stft_magnitude(const torch::Tensor& x, int64_t fft, int64_t hop, double floor = 1e-5);

// Log-magnitude spectrograms of `originals` [N, T] (top row) and `reconstructions` [N, T] (bottom
// row), side by side one clip per column, low frequencies at the bottom, the loudest bin of both
// rows white-yellow and 80 dB below it black (inferno colour map). uint8 [3, H, W] for save_png.
torch::Tensor spectrogram_sheet(const torch::Tensor& originals, const torch::Tensor& reconstructions,
                                int64_t fft = 512, int64_t hop = 128);
// The same for any number of rows, each [N, T] (one clip per column), shaded on the loudest bin of all.
torch::Tensor spectrogram_rows(const std::vector<torch::Tensor>& rows, int64_t fft = 512, int64_t hop = 128);
// Writes spectrogram_sheet as a PNG.
void save_spectrograms(const std::string& path, const torch::Tensor& originals, const torch::Tensor& reconstructions,
                       int64_t fft = 512, int64_t hop = 128);

// ---- the data set -------------------------------------------------------------------------------

struct AudioDataOptions {
  std::string folder;                // audio folder (searched recursively)
  int64_t sample_rate = 16000;       // fs every file is resampled to
  int64_t clip_length = 16384;       // T of one clip (1.024 s at 16 kHz)
  double validation_fraction = 0.1;  // share of files held out, chosen by a hash of the file name
  uint64_t split_seed = 0;           // changes which files are held out
  bool skip_bad_files = true;        // skip unreadable files with a warning (false: stop with an error)
  int64_t limit = 0;                 // use at most this many files (0 = all)
  int64_t cache_mb = 2048;           // keep decoded, resampled files in memory up to this many MiB

  void validate() const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AudioDataOptions, folder, sample_rate, clip_length,
                                                validation_fraction, split_seed, skip_bad_files, limit, cache_mb)

// File extensions the data set reads (lower case, with the dot).
const std::vector<std::string>& audio_extensions();

// The clips of a folder of audio files. Opening decodes every file once (mono, resampled), which
// finds every unreadable file up front and fixes each file's clip count; decoded files stay in
// memory up to cache_mb, the rest are decoded again when asked for. Clips of one file are
// consecutive items, and a file's clips are all on one side of the split.
class AudioDataset : public Dataset {
 public:
  // Files that cannot be decoded are skipped with one warning line each on `warnings` and a
  // summary line (or, with skip_bad_files = false, raise vqvae2::Error).
  static std::shared_ptr<AudioDataset> open(const AudioDataOptions& options, std::ostream* warnings = nullptr);

  int64_t size() const override { return static_cast<int64_t>(clips_.size()); }
  // float [1, clip_length]. Thread-safe. A file that decoded when the folder was scanned but fails
  // now (changed on disk since): with skip_bad_files, warns once and returns the next readable
  // clip instead; otherwise throws vqvae2::Error.
  torch::Tensor get(int64_t index) const override;

  const AudioDataOptions& options() const { return options_; }
  int64_t files() const { return static_cast<int64_t>(files_.size()); }
  const std::string& file_name(int64_t file) const { return files_.at(file).name; }
  int64_t file_of(int64_t clip) const { return clips_.at(clip).file; }
  double seconds() const;  // audio in the data set, at the target rate
  const std::vector<std::string>& skipped() const { return skipped_; }
  int64_t ignored_non_audio() const { return ignored_; }
  std::string describe() const;

  // (train, validation) clip indices; files are split by split_by_name on their names.
  std::pair<std::vector<int64_t>, std::vector<int64_t>> split() const;

 private:
  struct File {
    std::string name, path;  // name relative to the folder
    int64_t samples = 0;     // at the target rate
  };
  struct Clip {
    int64_t file = 0, offset = 0;  // first sample in the file's resampled waveform
  };

  explicit AudioDataset(const AudioDataOptions& options) : options_(options) {}
  torch::Tensor waveform(int64_t file) const;  // decoded (or cached) float [T]
  torch::Tensor clip(int64_t index) const;
  void cache(int64_t file, const torch::Tensor& waveform) const;

  AudioDataOptions options_;
  std::vector<File> files_;
  std::vector<Clip> clips_;
  std::vector<std::string> skipped_;
  int64_t ignored_ = 0;

  std::ostream* warnings_ = nullptr;
  mutable std::mutex mutex_;
  mutable std::vector<torch::Tensor> cache_;
  mutable std::vector<bool> broken_;
  mutable int64_t cache_bytes_ = 0;
};

}  // namespace vqvae2
