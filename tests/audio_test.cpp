#include "vqvae2/data/audio.h"

#include "test_util.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/files.h"
#include "vqvae2/data/image.h"

#include <gtest/gtest.h>
#include <sndfile.h>

#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

namespace vqvae2 {
namespace {

torch::Tensor sine(double frequency, int64_t rate, int64_t samples, double amplitude = 0.5) {
  return (amplitude * torch::sin(2 * M_PI * frequency / rate * torch::arange(samples, torch::kDouble))).to(torch::kFloat);
}

// Frequency (Hz) of the largest peak of the spectrum of x [T] sampled at `rate`, Hann-windowed.
double peak_frequency(const torch::Tensor& x, int64_t rate) {
  const auto window = torch::hann_window(x.size(0), torch::kFloat);
  const auto spectrum = torch::fft::rfft(x * window).abs();
  return spectrum.argmax().item<int64_t>() * static_cast<double>(rate) / x.size(0);
}

double rms(const torch::Tensor& x) { return x.to(torch::kDouble).pow(2).mean().sqrt().item<double>(); }

std::vector<uint8_t> bytes_of(const std::string& text) { return {text.begin(), text.end()}; }

// ---- files ----------------------------------------------------------------------------------------

TEST(Audio, WavRoundTripIsExactWithinSixteenBitQuantisation) {
  torch::manual_seed(0);
  const auto samples = torch::rand({2, 1000}) * 1.8 - 0.9;  // stereo, [-0.9, 0.9]
  test::TempDir dir;
  save_wav(dir.file("x.wav"), samples, 22050);
  const auto audio = read_audio(dir.file("x.wav"));
  EXPECT_EQ(audio.sample_rate, 22050);
  ASSERT_EQ(audio.samples.sizes(), samples.sizes());
  // round(32768 x) / 32768: at most half a quantisation step away.
  EXPECT_LE((audio.samples - samples).abs().max().item<double>(), 0.5 / 32768 + 1e-7);
  EXPECT_GT((audio.samples - samples).abs().max().item<double>(), 0.0);  // it was quantised
}

TEST(Audio, WavWritingClipsBeyondFullScale) {
  const auto audio = decode_audio(bytes_of(encode_wav(torch::tensor({1.5f, -2.0f, 0.25f}), 16000)), "clip.wav");
  EXPECT_NEAR(audio.samples[0][0].item<float>(), 32767.0 / 32768, 1e-7);
  EXPECT_EQ(audio.samples[0][1].item<float>(), -1.0f);
  EXPECT_EQ(audio.samples[0][2].item<float>(), 0.25f);
}

TEST(Audio, MonoIsTheMeanOfTheChannels) {
  const auto stereo = torch::tensor({{1.0f, 0.5f}, {0.0f, -0.5f}});
  EXPECT_TRUE(torch::allclose(to_mono(stereo), torch::tensor({0.5f, 0.0f})));
}

TEST(Audio, ReadsFlacAndOggThroughLibsndfile) {
  test::TempDir dir;
  const auto tone = sine(440, 16000, 8000);
  for (const auto& [name, format] : {std::pair{"x.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16},
                                     std::pair{"x.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS}}) {
    SF_INFO info{};
    info.samplerate = 16000;
    info.channels = 1;
    info.format = format;
    SNDFILE* file = sf_open(dir.file(name).c_str(), SFM_WRITE, &info);
    ASSERT_NE(file, nullptr) << sf_strerror(nullptr);
    sf_writef_float(file, tone.data_ptr<float>(), tone.size(0));
    sf_close(file);
    const auto audio = load_audio(dir.file(name), 16000);
    ASSERT_EQ(audio.size(0), 8000) << name;
    EXPECT_NEAR(peak_frequency(audio, 16000), 440, 2) << name;
    EXPECT_NEAR(rms(audio), rms(tone), 0.02) << name;
  }
}

// ---- resampling -----------------------------------------------------------------------------------

TEST(Audio, ResamplingKeepsASinesFrequencyAndLevel) {
  const auto x = sine(1000, 44100, 44100);  // 1 s of 1 kHz at 44.1 kHz
  const auto y = resample(x, 44100, 16000);
  ASSERT_EQ(y.size(0), 16000);
  EXPECT_EQ(peak_frequency(y, 16000), 1000);
  // Away from the ends (where the filter meets the zero padding) the tone keeps its amplitude and phase.
  const auto middle = y.slice(0, 1000, 15000);
  const auto expected = sine(1000, 16000, 16000).slice(0, 1000, 15000);
  EXPECT_LT((middle - expected).abs().max().item<double>(), 1e-3);
}

TEST(Audio, ResamplingDoesNotAliasAToneAboveTheNewNyquist) {
  // 10 kHz at 44.1 kHz would fold to 6 kHz at 16 kHz; the low-pass must remove it first.
  const auto x = sine(10000, 44100, 44100);
  const auto y = resample(x, 44100, 16000).slice(0, 1000, 15000);
  EXPECT_LT(rms(y), 1e-3 * rms(x));  // at least 60 dB down
  // A tone just inside the pass band survives.
  const auto kept = resample(sine(7000, 44100, 44100), 44100, 16000).slice(0, 1000, 15000);
  EXPECT_NEAR(rms(kept), rms(sine(7000, 44100, 44100)), 0.01);
}

TEST(Audio, UpsamplingAddsNoImages) {
  // 1 kHz at 8 kHz -> 16 kHz: the image at 8 kHz - 1 kHz = 7 kHz must be filtered away.
  const auto y = resample(sine(1000, 8000, 8000), 8000, 16000);
  ASSERT_EQ(y.size(0), 16000);
  EXPECT_EQ(peak_frequency(y, 16000), 1000);
  const auto spectrum = torch::fft::rfft(y.slice(0, 4000, 12000) * torch::hann_window(8000)).abs();  // 2 Hz bins
  EXPECT_LT(spectrum[3500].item<double>(), 1e-3 * spectrum[500].item<double>());
}

TEST(Audio, ResamplingHandlesRatiosWithManyPhases) {
  // 44100 -> 16001 reduces to 44100/16001: too many phases to tabulate, so the weights are computed
  // per output sample; the result must be the same tone.
  const auto y = resample(sine(1000, 44100, 44100), 44100, 16001);
  ASSERT_EQ(y.size(0), 16001);
  EXPECT_LT((y.slice(0, 1000, 15000) - sine(1000, 16001, 16001).slice(0, 1000, 15000)).abs().max().item<double>(), 1e-3);
}

TEST(Audio, ResamplingKeepsChannelsAndTheLengthFormula) {
  const auto stereo = torch::stack({sine(300, 22050, 1001), sine(500, 22050, 1001)});
  const auto y = resample(stereo, 22050, 16000);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 727}));  // ceil(1001 · 16000 / 22050)
  EXPECT_TRUE(torch::equal(resample(stereo, 16000, 16000), stereo));
  test::expect_error([&] { resample(stereo, 0, 16000); }, "sample rates");
  test::expect_error([] { resample(torch::zeros({1, 2, 3}), 16000, 8000); }, "resample expects samples [T] or [C, T]");
}

// ---- clips and spectrograms -------------------------------------------------------------------------

TEST(Audio, ClipsPadTheLastPartOrDropAShortTail) {
  EXPECT_EQ(clip_count(100, 10), 10);
  EXPECT_EQ(clip_count(102, 10), 10);  // a tail under a quarter clip is dropped
  EXPECT_EQ(clip_count(103, 10), 11);  // at least a quarter: padded
  EXPECT_EQ(clip_count(3, 10), 1);     // the only clip is always kept
  EXPECT_EQ(clip_count(0, 10), 0);
  const auto clips = cut_clips(torch::arange(25, torch::kFloat), 10);
  ASSERT_EQ(clips.sizes(), (std::vector<int64_t>{3, 10}));
  EXPECT_EQ(clips[2][4].item<float>(), 24.0f);
  EXPECT_EQ(clips[2][5].item<float>(), 0.0f);
}

TEST(Audio, StftMagnitudeFindsTheTone) {
  const auto magnitude = stft_magnitude(sine(1000, 16000, 4096).unsqueeze(0), 512, 128);  // [1, 257, 33]
  ASSERT_EQ(magnitude.sizes(), (std::vector<int64_t>{1, 257, 33}));
  const auto bins = magnitude[0].mean(1);
  EXPECT_EQ(bins.argmax().item<int64_t>(), 32);  // 1000 Hz / (16000 Hz / 512)
}

TEST(Audio, SpectrogramSheetStacksOriginalsOverReconstructions) {
  const auto originals = torch::stack({sine(500, 16000, 2048), sine(3000, 16000, 2048)});
  const auto reconstructions = torch::zeros_like(originals);
  const auto sheet = spectrogram_sheet(originals, reconstructions, 256, 64);
  // make_grid: 2 columns of 33 frames, 2 rows of 129 bins, 2-pixel gaps.
  ASSERT_EQ(sheet.sizes(), (std::vector<int64_t>{3, 2 + 2 * (129 + 2), 2 + 2 * (33 + 2)}));
  EXPECT_EQ(sheet.scalar_type(), torch::kUInt8);
  const auto top = sheet.slice(1, 2, 131).to(torch::kFloat), bottom = sheet.slice(1, 133, 262).to(torch::kFloat);
  EXPECT_GT(top.mean().item<double>(), bottom.mean().item<double>() + 10);  // the tones against silence
  test::TempDir dir;
  save_spectrograms(dir.file("s.png"), originals, reconstructions, 256, 64);
  EXPECT_EQ(probe_image(dir.file("s.png")).width, sheet.size(2));
}

TEST(Audio, SpectrogramRowsTakeAnyNumberOfRowsOfOneShape) {
  const auto tones = torch::stack({sine(500, 16000, 2048), sine(3000, 16000, 2048), sine(900, 16000, 2048)});
  EXPECT_EQ(spectrogram_rows({tones}, 256, 64).sizes(), (std::vector<int64_t>{3, 2 + (129 + 2), 2 + 3 * (33 + 2)}));
  EXPECT_EQ(spectrogram_rows({tones, tones, tones}, 256, 64).size(1), 2 + 3 * (129 + 2));
  test::expect_error([&] { spectrogram_rows({tones, tones.slice(0, 0, 2)}); }, "spectrogram rows must have one shape");
  test::expect_error([] { spectrogram_rows({}); }, "spectrograms need rows of clips [N, T], got none");
}

// ---- bad files ------------------------------------------------------------------------------------

struct BadFile {
  std::string name, bytes;
};

std::vector<BadFile> bad_files() {
  const auto wav = encode_wav(sine(440, 16000, 4000), 16000);
  std::string noise(3000, '\0');
  uint32_t state = 12345;
  for (auto& c : noise) c = static_cast<char>((state = state * 1664525u + 1013904223u) >> 24);
  test::TempDir dir;
  save_png(dir.file("p.png"), torch::full({3, 4, 4}, 100, torch::kUInt8));
  const auto png = read_file(dir.file("p.png"));
  return {{"empty.wav", ""},
          {"header-cut.wav", wav.substr(0, 30)},
          {"data-cut.wav", wav.substr(0, 2000)},
          {"random.flac", noise},
          {"picture.wav", std::string(png.begin(), png.end())}};
}

TEST(Audio, BadFilesGiveOneClearErrorLineEach) {
  for (const auto& bad : bad_files()) {
    try {
      decode_audio(bytes_of(bad.bytes), bad.name);
      ADD_FAILURE() << bad.name << " decoded";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(bad.name), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  }
}

TEST(Audio, NonFiniteSamplesAreRefused) {
  test::TempDir dir;
  SF_INFO info{};
  info.samplerate = 16000;
  info.channels = 1;
  info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  SNDFILE* file = sf_open(dir.file("nan.wav").c_str(), SFM_WRITE, &info);
  ASSERT_NE(file, nullptr);
  const float samples[3] = {0.1f, std::nanf(""), 0.2f};
  sf_writef_float(file, samples, 3);
  sf_close(file);
  try {
    read_audio(dir.file("nan.wav"));
    FAIL() << "NaN samples were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos) << e.what();
  }
}

// ---- the data set ---------------------------------------------------------------------------------

AudioDataOptions folder_options(const std::string& folder, int64_t clip_length = 4000) {
  AudioDataOptions o;
  o.folder = folder;
  o.clip_length = clip_length;
  o.validation_fraction = 0.3;
  return o;
}

TEST(AudioData, ReadsAFolderAndSkipsBadFilesWithACountAndOneWarningEach) {
  test::TempDir dir;
  save_wav(dir.file("a.wav"), sine(440, 16000, 10000), 16000);  // 2.5 clips of 4000: 3 (padded)
  save_wav(dir.file("b.wav"), torch::stack({sine(440, 22050, 5512), sine(440, 22050, 5512)}), 22050);  // 4000 at 16k
  std::filesystem::create_directories(dir.file("sub"));
  save_wav(dir.file("sub/c.wav"), sine(440, 48000, 3000), 48000);  // 1000 at 16 kHz: one padded clip
  for (const auto& bad : bad_files()) test::write_bytes(dir.file(bad.name), bad.bytes);
  test::write_bytes(dir.file("notes.txt"), "ignored");
  std::ostringstream warnings;
  const auto dataset = AudioDataset::open(folder_options(dir.path()), &warnings);
  EXPECT_EQ(dataset->files(), 3);
  EXPECT_EQ(dataset->size(), 3 + 1 + 1);
  EXPECT_EQ(dataset->skipped().size(), 5u);
  EXPECT_EQ(dataset->ignored_non_audio(), 1);
  // One line per bad file naming it, then the summary line.
  std::istringstream lines(warnings.str());
  std::string line;
  std::vector<std::string> all;
  while (std::getline(lines, line)) all.push_back(line);
  ASSERT_EQ(all.size(), 6u) << warnings.str();
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(all[i].rfind("warning: skipping ", 0), 0u) << all[i];
  EXPECT_NE(all[5].find("5 unreadable audio files skipped, 1 non-audio files ignored"), std::string::npos) << all[5];
  EXPECT_NE(dataset->describe().find("5 unreadable files skipped"), std::string::npos);
  for (int64_t i = 0; i < dataset->size(); ++i) {
    const auto clip = dataset->get(i);
    ASSERT_EQ(clip.sizes(), (std::vector<int64_t>{1, 4000}));
    EXPECT_EQ(clip.scalar_type(), torch::kFloat);
  }
  // a.wav's third clip is its last 2000 samples, then zeros.
  const auto third = dataset->get(2);
  EXPECT_GT(third.slice(1, 0, 2000).abs().max().item<float>(), 0.4f);
  EXPECT_EQ(third.slice(1, 2000, 4000).abs().max().item<float>(), 0.0f);
}

TEST(AudioData, FailModeStopsAtTheFirstBadFile) {
  test::TempDir dir;
  save_wav(dir.file("a.wav"), sine(440, 16000, 4000), 16000);
  test::write_bytes(dir.file("b.wav"), "RIFF garbage");
  auto o = folder_options(dir.path());
  o.skip_bad_files = false;
  try {
    AudioDataset::open(o);
    FAIL() << "a bad file was accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("b.wav"), std::string::npos) << message;
    EXPECT_NE(message.find("--on-bad-file skip"), std::string::npos) << message;
  }
}

TEST(AudioData, SplitKeepsEachFilesClipsOnOneSideAndIsStable) {
  test::TempDir dir;
  for (int i = 0; i < 12; ++i) save_wav(dir.file(fmt::format("f{:02d}.wav", i)), sine(200 + 50 * i, 16000, 8500), 16000);
  const auto dataset = AudioDataset::open(folder_options(dir.path()));
  EXPECT_EQ(dataset->size(), 12 * 2);  // 8500 = 2 clips of 4000 and a tail of 500 (under a quarter: dropped)
  const auto [train, validation] = dataset->split();
  EXPECT_EQ(train.size() + validation.size(), static_cast<size_t>(dataset->size()));
  EXPECT_FALSE(validation.empty());
  std::set<int64_t> held_out_files;
  for (const auto c : validation) held_out_files.insert(dataset->file_of(c));
  for (const auto c : train) EXPECT_EQ(held_out_files.count(dataset->file_of(c)), 0u);
  EXPECT_EQ(AudioDataset::open(folder_options(dir.path()))->split(), dataset->split());
}

TEST(AudioData, BatchLoaderStacksClips) {
  test::TempDir dir;
  for (int i = 0; i < 3; ++i) save_wav(dir.file(fmt::format("f{}.wav", i)), sine(300, 16000, 8000), 16000);
  const auto dataset = AudioDataset::open(folder_options(dir.path()));
  LoaderOptions options;
  options.batch_size = 4;
  BatchLoader loader(dataset, {0, 1, 2, 3, 4, 5}, options);
  loader.start(0);
  const auto batch = loader.next();
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->images.sizes(), (std::vector<int64_t>{4, 1, 4000}));
  EXPECT_EQ(batch->images.scalar_type(), torch::kFloat);
}

TEST(AudioData, ReportsAnEmptyOrMissingFolder) {
  test::TempDir dir;
  test::write_bytes(dir.file("notes.txt"), "no audio here");
  test::expect_error([&] { AudioDataset::open(folder_options(dir.path())); }, "no readable audio in");
  test::expect_error([&] { AudioDataset::open(folder_options(dir.file("missing"))); }, "does not exist");
}

}  // namespace
}  // namespace vqvae2
