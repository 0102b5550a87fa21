// Errors a user can act on. Library code throws vqvae2::Error (never asserts or exits) with a
// message that says what went wrong, where, and what to do; the CLI prints it and exits non-zero.
#pragma once

#include <c10/util/ArrayRef.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace vqvae2 {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// "[2, 3, 32, 32]": a tensor shape for messages.
std::string shape_of(c10::IntArrayRef sizes);

// The message of any exception, without LibTorch's C++ backtrace (c10::Error::what() appends one).
std::string describe(const std::exception& error);

}  // namespace vqvae2

// Throws vqvae2::Error with the formatted message when `condition` is false.
#define VQVAE2_CHECK(condition, ...)   \
  do {                                 \
    if (!(condition)) {                \
      ::vqvae2::fail(__VA_ARGS__);     \
    }                                  \
  } while (false)
