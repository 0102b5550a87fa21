#include "vqvae2/core/progress.h"

#include <gtest/gtest.h>

#include <sstream>

namespace vqvae2 {
namespace {

int count_lines(const std::string& text, const std::string& containing) {
  int n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.find(containing) != std::string::npos;
  return n;
}

TEST(Progress, DurationsReadNaturally) {
  EXPECT_EQ(ProgressBar::format_duration(5), "5s");
  EXPECT_EQ(ProgressBar::format_duration(125), "2m05s");
  EXPECT_EQ(ProgressBar::format_duration(3 * 3600 + 60 * 7), "3h07m");
  EXPECT_EQ(ProgressBar::format_duration(-1), "--");
}

TEST(Progress, OffATerminalItPrintsAboutEveryTenthOfTheWork) {
  std::ostringstream out;
  {
    ProgressBar bar("train", 100, 0, &out);
    for (int i = 1; i <= 100; ++i) bar.update(i, "loss 0.5");
    bar.finish();
  }
  const auto text = out.str();
  const auto lines = count_lines(text, "train [");
  EXPECT_GE(lines, 10);
  EXPECT_LE(lines, 12);
  EXPECT_NE(text.find("100/100"), std::string::npos) << text;
  EXPECT_NE(text.find("loss 0.5"), std::string::npos) << text;
  EXPECT_EQ(text.find("\r"), std::string::npos) << "no redrawing off a terminal";
}

TEST(Progress, MessagesShowWithoutTheBarAndNothingShowsWithoutAStream) {
  std::ostringstream out;
  ProgressBar quiet("x", 10, 0, &out, /*bar=*/false);
  quiet.update(5);
  quiet.message("step 5: validation MSE 0.1");
  quiet.finish();
  EXPECT_EQ(out.str(), "step 5: validation MSE 0.1\n");
  ProgressBar silent("x", 10, 0, nullptr);
  silent.update(10);
  silent.message("nobody hears this");
  silent.finish();
}

TEST(Progress, AResumedBarCountsFromWhereItStarted) {
  std::ostringstream out;
  ProgressBar bar("resume", 10, 8, &out);
  bar.finish();
  EXPECT_NE(out.str().find("8/10"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace vqvae2
