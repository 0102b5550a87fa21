#include "vqvae2/core/plot.h"

#include "chart_reader.h"

#include <gtest/gtest.h>
#include <pugixml.hpp>

#include <algorithm>
#include <cmath>

namespace vqvae2 {
namespace {

using namespace test::chart_reader;

TEST(Plot, ScalesMapBothWaysLinearAndLog) {
  const plot::Scale linear{0, 10, 100, 300, false};
  EXPECT_DOUBLE_EQ(linear.to_pixel(0), 100);
  EXPECT_DOUBLE_EQ(linear.to_pixel(5), 200);
  EXPECT_DOUBLE_EQ(linear.to_value(250), 7.5);
  const plot::Scale log{0.01, 100, 250, 50, true};  // a y axis: larger values higher up
  EXPECT_DOUBLE_EQ(log.to_pixel(0.01), 250);
  EXPECT_NEAR(log.to_pixel(1), 150, 1e-9);
  EXPECT_NEAR(log.to_value(log.to_pixel(3.7)), 3.7, 1e-12);
}

TEST(Plot, TicksAreRoundNumbersInsideTheRange) {
  EXPECT_EQ(plot::ticks({0, 1, 0, 1, false}), (std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1}));
  EXPECT_EQ(plot::ticks({-3, 47, 0, 1, false}), (std::vector<double>{0, 10, 20, 30, 40}));
  EXPECT_EQ(plot::ticks({0.001, 1, 0, 1, true}), (std::vector<double>{0.001, 0.01, 0.1, 1}));
  EXPECT_EQ(plot::ticks({0.1, 1, 0, 1, true}), (std::vector<double>{0.1, 0.2, 0.5, 1}));
  EXPECT_EQ(plot::ticks({1e-12, 1, 0, 1, true}), (std::vector<double>{1e-12, 1e-9, 1e-6, 1e-3, 1}))
      << "twelve decades, thinned";
  for (const double v : plot::ticks({0.3, 0.7, 0, 1, false})) EXPECT_EQ(std::stod(plot::tick_label(v)), v);
  EXPECT_EQ(plot::tick_label(0.1 + 0.2), "0.3");
  EXPECT_EQ(plot::tick_label(20000), "20000");
  EXPECT_EQ(plot::tick_label(1e-5), "1e-05");
}

TEST(Plot, FitScaleGoesLogOnlyForValuesSpanningADecade) {
  const auto falling = plot::fit_scale({2.5, 0.6, 0.05}, 200, 20, true);
  EXPECT_TRUE(falling.log);
  EXPECT_DOUBLE_EQ(falling.lo, 0.05);
  EXPECT_DOUBLE_EQ(falling.hi, 5);
  const auto decades = plot::fit_scale({0.1, 1.0}, 200, 20, true);
  EXPECT_DOUBLE_EQ(decades.lo, 0.1);
  EXPECT_DOUBLE_EQ(decades.hi, 1);
  EXPECT_FALSE(plot::fit_scale({2.5, 0.6, 0.05}, 200, 20, false).log);
  EXPECT_FALSE(plot::fit_scale({0, 5, 50}, 200, 20, true).log) << "zero cannot be drawn on a log scale";
  const auto narrow = plot::fit_scale({6.48, 19.5}, 200, 20, true);
  EXPECT_FALSE(narrow.log);
  EXPECT_LE(narrow.lo, 6.48);
  EXPECT_GE(narrow.hi, 19.5);
  const auto ends = plot::ticks(narrow);
  EXPECT_DOUBLE_EQ(ends.front(), narrow.lo) << "the axis starts on a tick";
  EXPECT_DOUBLE_EQ(ends.back(), narrow.hi) << "and ends on one";
  const auto constant = plot::fit_scale({3, 3}, 0, 1, true);
  EXPECT_LT(constant.lo, 3);
  EXPECT_GT(constant.hi, 3);
  const auto empty = plot::fit_scale({}, 0, 1, true);
  EXPECT_LT(empty.lo, empty.hi);
}

TEST(Plot, DecimateKeepsEachStretchsExtremesInOrder) {
  std::vector<double> values(10000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = std::sin(static_cast<double>(i) * 0.01);
  values[4321] = 50;
  values[777] = -50;
  const auto kept = plot::decimate(values, 100);
  EXPECT_LE(kept.size(), 200u);
  EXPECT_TRUE(std::is_sorted(kept.begin(), kept.end()));
  EXPECT_NE(std::find(kept.begin(), kept.end(), 4321u), kept.end());
  EXPECT_NE(std::find(kept.begin(), kept.end(), 777u), kept.end());
  EXPECT_EQ(plot::decimate({1, 2, 3}, 100).size(), 3u);
}

TEST(Plot, PolylinePointsLeaveOutWhatALogScaleCannotShow) {
  const plot::Scale x{0, 10, 0, 100, false};
  const plot::Scale y{0.1, 10, 100, 0, true};
  EXPECT_EQ(plot::polyline_points({0, 5, 10}, {0.1, 0, 10}, x, y), "0.0,100.0 100.0,0.0");
  EXPECT_EQ(plot::xml_escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
}

TEST(Plot, ChartsAreWellFormedSvgWithEveryLineInTheLegend) {
  Series train{{0, 1, 2}, {3, 2, 1}};
  Series held_out{{2}, {1.5}};
  plot::ChartOptions options;
  options.title = "a <title> & more";
  const auto svg = plot::chart_svg({{"train", "", "loss", &train, plot::colour(0), "", false},
                                    {"held out", "", "val_loss", &held_out, plot::colour(1), "5,3", true},
                                    {"missing", "", "x", nullptr, plot::colour(2), "", false}},
                                   options);
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(svg.c_str())) << svg;
  const auto root = doc.child("svg");
  EXPECT_STREQ(root.attribute("xmlns").value(), "http://www.w3.org/2000/svg");
  EXPECT_STREQ(root.find_child_by_attribute("text", "class", "title").child_value(), "a <title> & more");
  EXPECT_EQ(root.select_nodes("polyline").size(), 2u);
  EXPECT_EQ(root.select_nodes("circle").size(), 1u) << "markers on the held-out line only";
  std::vector<std::string> legend;
  for (const auto& text : root.select_nodes("g[@class='legend']/text")) legend.emplace_back(text.node().child_value());
  EXPECT_EQ(legend, (std::vector<std::string>{"train", "held out", "missing (no data)"}));
  const Expected expected = {{"loss", {{0, 3}, {1, 2}, {2, 1}}}, {"val_loss", {{2, 1.5}}}};
  EXPECT_EQ(check_charts_against_log(doc, expected), (std::vector<std::string>{"loss", "val_loss"}));
}

}  // namespace
}  // namespace vqvae2
