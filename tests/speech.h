// Spoken words for the audio tests, synthesised by espeak-ng (scripts/setup.sh installs it).
#pragma once

#include <fmt/format.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace vqvae2::test {

inline bool have_espeak() { return std::system("command -v espeak-ng >/dev/null 2>&1") == 0; }

// Writes one 22,050 Hz WAV per (word, voice) into `folder` ("<voice>-<word>.wav"); true on success.
// Deterministic: espeak-ng's output depends only on the text, voice, speed and pitch.
inline bool write_speech(const std::string& folder, const std::vector<std::string>& words,
                         const std::vector<std::string>& voices) {
  std::string script;
  for (const auto& voice : voices) {
    for (const auto& word : words) {
      script += fmt::format("espeak-ng -v {} -s 170 -w '{}/{}-{}.wav' '{}' && ", voice, folder, voice, word, word);
    }
  }
  return std::system((script + "true").c_str()) == 0;
}

inline const std::vector<std::string>& digit_words() {
  static const std::vector<std::string> words = {"zero", "one", "two",   "three", "four",
                                                 "five", "six", "seven", "eight", "nine"};
  return words;
}

}  // namespace vqvae2::test
