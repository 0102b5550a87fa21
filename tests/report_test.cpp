#include "vqvae2/core/report.h"

#include "test_util.h"
#include "vqvae2/core/error.h"
#include "vqvae2/core/files.h"

#include <gtest/gtest.h>
#include <pugixml.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

namespace vqvae2 {
namespace {

namespace fs = std::filesystem;

// ---- reading what was drawn back, the way a person reads a chart ----------------------------------

// An axis as its tick labels say: the first and last tick's positions and the values printed there,
// interpolated linearly or (when the axis label says "log scale") in log10.
struct ReadAxis {
  double p0 = 0, v0 = 0, p1 = 0, v1 = 0;
  bool log = false;

  double pixel_of(double value) const {
    const auto t = log ? (std::log10(value) - std::log10(v0)) / (std::log10(v1) - std::log10(v0))
                       : (value - v0) / (v1 - v0);
    return p0 + t * (p1 - p0);
  }
};

// "translate(12.5,0)" -> 12.5 (x) or "translate(0,7.5)" -> 7.5 (y).
double translation(const std::string& transform, bool y) {
  const auto open = transform.find('('), comma = transform.find(',');
  return std::stod(y ? transform.substr(comma + 1) : transform.substr(open + 1, comma - open - 1));
}

ReadAxis read_axis(const pugi::xml_node& chart, const std::string& tick_class, bool log) {
  ReadAxis axis;
  axis.log = log;
  std::vector<std::pair<double, double>> ticks;  // (pixel, value)
  for (const auto& g : chart.children("g")) {
    if (std::string(g.attribute("class").value()) != tick_class) continue;
    ticks.emplace_back(translation(g.attribute("transform").value(), tick_class == "tick-y"),
                       std::stod(g.child("text").child_value()));
  }
  EXPECT_GE(ticks.size(), 2u) << "an axis needs two labelled ticks to be read";
  if (ticks.size() < 2) return axis;
  axis.p0 = ticks.front().first;
  axis.v0 = ticks.front().second;
  axis.p1 = ticks.back().first;
  axis.v1 = ticks.back().second;
  return axis;
}

std::vector<std::pair<double, double>> points_of(const pugi::xml_node& polyline) {
  std::vector<std::pair<double, double>> points;
  std::istringstream in(polyline.attribute("points").value());
  std::string pair;
  while (in >> pair) {
    const auto comma = pair.find(',');
    points.emplace_back(std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1)));
  }
  return points;
}

// The log as the test reads it (straight from the JSON, not through read_metrics): key -> (step, value).
using Expected = std::map<std::string, std::vector<std::pair<double, double>>>;

Expected expected_from(const std::string& jsonl) {
  Expected expected;
  std::istringstream in(jsonl);
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("step") || j.value("event", "") == "skipped") continue;
    for (const auto& [key, value] : j.items()) {
      if (key == "step" || key == "epoch") continue;
      if (value.is_number()) expected[key].emplace_back(j["step"].get<double>(), value.get<double>());
      if (value.is_array()) {
        for (size_t i = 0; i < value.size(); ++i) {
          expected[key + "[" + std::to_string(i) + "]"].emplace_back(j["step"].get<double>(), value[i].get<double>());
        }
      }
    }
  }
  return expected;
}

// Every polyline in every chart (an <svg> holding tick groups) under `root` lies, read back through
// its chart's axes, on the logged values: same count, within pixel rounding. Returns the keys of
// the polylines checked, in document order.
std::vector<std::string> check_charts_against_log(const pugi::xml_node& root, const Expected& expected) {
  std::vector<std::string> checked;
  for (const auto& found : root.select_nodes("//*[local-name()='svg'][*[local-name()='g'][@class='tick-y']]")) {
    const auto chart = found.node();
    const std::string y_label = chart.find_child_by_attribute("text", "class", "y-label").child_value();
    const auto x = read_axis(chart, "tick-x", false);
    const auto y = read_axis(chart, "tick-y", y_label.find("log scale") != std::string::npos);
    for (const auto& polyline : chart.children("polyline")) {
      const std::string key = polyline.attribute("data-key").value();
      SCOPED_TRACE("series " + key + " in chart '" + chart.find_child_by_attribute("text", "class", "title").child_value() + "'");
      const auto points = points_of(polyline);
      const auto& logged = expected.at(key);
      EXPECT_EQ(points.size(), logged.size());
      for (size_t i = 0; i < std::min(points.size(), logged.size()); ++i) {
        EXPECT_NEAR(points[i].first, x.pixel_of(logged[i].first), 0.2) << "step " << logged[i].first;
        EXPECT_NEAR(points[i].second, y.pixel_of(logged[i].second), 0.2) << "value " << logged[i].second;
      }
      checked.push_back(key);
    }
  }
  return checked;
}

std::string decode_base64(const std::string& text) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (const char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else break;  // '=' padding
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xff);
    }
  }
  return out;
}

pugi::xml_document parse_xml(const std::string& path) {
  pugi::xml_document doc;
  const auto result = doc.load_file(path.c_str());
  EXPECT_TRUE(result) << path << ": " << result.description() << " at byte " << result.offset;
  return doc;
}

// ---- a VQ-VAE run folder, as train_vqvae writes it -------------------------------------------------

const char* kVQVAELog =
    R"({"event":"eval","step":0,"epoch":0,"val_mse":0.9,"val_psnr":6.48,"val_perplexity":[3.5,2.0],"val_usage":[0.25,0.125],"val_images":64}
{"step":10,"epoch":0,"lr":0.001,"loss":2.5,"reconstruction_mse":0.8,"commitment_loss":0.3,"codebook_loss":0.0,"perplexity":[5.0,3.0],"usage":[0.5,0.25],"images_per_second":120.5}
{"event":"skipped","step":11,"epoch":0,"reason":"non-finite loss"}
{"step":20,"epoch":0,"lr":0.001,"loss":0.6,"reconstruction_mse":0.2,"commitment_loss":0.1,"codebook_loss":0.0,"perplexity":[9.0,4.5],"usage":[0.75,0.5],"images_per_second":133.25}

{"step":30,"epoch":1,"lr":0.001,"loss":0.05,"reconstruction_mse":0.04,"commitment_loss":0.01,"codebook_loss":0.0,"perplexity":[12.5,6.0],"usage":[0.875,0.75],"images_per_second":129.0}
{"event":"eval","step":30,"epoch":1,"val_mse":0.045,"val_psnr":19.5,"val_perplexity":[11.0,5.5],"val_usage":[0.8125,0.625],"val_images":64}
{"step":40,"epoch":1,"lr":0.001,"loss":0.03,"reconst)";

void write_vqvae_run(const test::TempDir& dir) {
  fs::create_directories(dir.file("grids"));
  test::write_bytes(dir.file("metrics.jsonl"), kVQVAELog);
  test::write_bytes(dir.file("config.json"), R"({"kind":"vqvae","config":{"model":{"codes":16,"strides":[4,2]}}})");
}

TEST(Report, ReadsEveryFigureAndToleratesSkippedAndTruncatedLines) {
  test::TempDir dir;
  write_vqvae_run(dir);
  const auto history = read_metrics(dir.file("metrics.jsonl"));
  EXPECT_EQ(history.lines, 7);  // the blank line is not one
  EXPECT_EQ(history.unreadable_lines, 1);  // the truncated last line
  EXPECT_EQ(history.skipped_steps, std::vector<int64_t>{11});
  EXPECT_EQ(history.last_step, 30);
  EXPECT_EQ(history.series.at("loss").steps, (std::vector<double>{10, 20, 30}));
  EXPECT_EQ(history.series.at("loss").values, (std::vector<double>{2.5, 0.6, 0.05}));
  EXPECT_EQ(history.series.at("usage[1]").values, (std::vector<double>{0.25, 0.5, 0.75}));
  EXPECT_EQ(history.series.at("val_usage[0]").steps, (std::vector<double>{0, 30}));
  EXPECT_EQ(history.series.at("val_psnr").values, (std::vector<double>{6.48, 19.5}));
  EXPECT_FALSE(history.has("val_images")) << "a count, not a figure";
  EXPECT_FALSE(history.has("epoch"));
  EXPECT_EQ(history.last_evaluation.at("val_mse").get<double>(), 0.045);
  EXPECT_EQ(headline_key(history), "val_mse");
}

TEST(Report, LeavesNullValuesOutOfTheirSeries) {
  test::TempDir dir;
  test::write_bytes(dir.file("m.jsonl"), "{\"step\":1,\"loss\":1.5}\n{\"step\":2,\"loss\":null}\n{\"step\":3,\"loss\":0.5}\n");
  const auto history = read_metrics(dir.file("m.jsonl"));
  EXPECT_EQ(history.series.at("loss").steps, (std::vector<double>{1, 3}));
  EXPECT_EQ(history.unreadable_lines, 0);
  EXPECT_THROW(read_metrics(dir.file("absent.jsonl")), Error);
}

TEST(Report, HeadlineOfAPriorIsItsHeldOutBitsPerCode) {
  test::TempDir dir;
  test::write_bytes(dir.file("m.jsonl"),
                    "{\"step\":5,\"loss\":4.1,\"bits_per_code\":5.9}\n"
                    "{\"event\":\"eval\",\"step\":5,\"val_nll_nats\":4.0,\"val_bits_per_code\":5.77,\"val_codes\":100}\n");
  EXPECT_EQ(headline_key(read_metrics(dir.file("m.jsonl"))), "val_bits_per_code");
}

// ---- the pure drawing functions --------------------------------------------------------------------

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

// ---- report.html -----------------------------------------------------------------------------------

TEST(Report, HtmlIsWellFormedAndItsCurvesAreTheLoggedValues) {
  test::TempDir dir;
  write_vqvae_run(dir);
  const auto path = write_report(dir.path());
  EXPECT_EQ(path, dir.file("report.html"));
  const auto doc = parse_xml(path);
  const auto html = test::read_text(path);

  std::vector<std::string> titles;
  for (const auto& t : doc.select_nodes("//*[local-name()='text'][@class='title']")) titles.emplace_back(t.node().child_value());
  EXPECT_EQ(titles, (std::vector<std::string>{"Loss", "Reconstruction error", "Reconstruction PSNR",
                                              "Code usage per level (0 = bottom)",
                                              "Codebook perplexity per level (0 = bottom)", "Throughput"}))
      << "a constant learning rate gets no chart";
  // Every series of the log is drawn, where it belongs, at its values.
  const auto expected = expected_from(kVQVAELog);
  EXPECT_EQ(check_charts_against_log(doc, expected),
            (std::vector<std::string>{"loss", "commitment_loss", "reconstruction_mse", "val_mse", "val_psnr", "usage[0]",
                                      "usage[1]", "val_usage[0]", "val_usage[1]", "perplexity[0]", "perplexity[1]",
                                      "val_perplexity[0]", "val_perplexity[1]", "images_per_second"}))
      << "the codebook loss is zero throughout and the learning rate constant: no lines for them";
  const auto stroke = [&](const std::string& key) {
    return std::string(doc.select_node(("//*[local-name()='polyline'][@data-key='" + key + "']").c_str())
                           .node()
                           .attribute("stroke")
                           .value());
  };
  EXPECT_EQ(stroke("usage[0]"), stroke("val_usage[0]")) << "a figure and its held-out twin share a colour";
  EXPECT_NE(stroke("usage[0]"), stroke("usage[1]"));
  std::set<std::string> frame_widths;
  for (const auto& frame : doc.select_nodes("//*[local-name()='rect'][@class='frame']")) {
    frame_widths.insert(frame.node().attribute("width").value());
  }
  EXPECT_EQ(frame_widths.size(), 1u) << "the charts' plot areas line up";
  const auto loss_chart = doc.select_node("//*[local-name()='svg'][*[@class='title']='Loss']").node();
  EXPECT_NE(std::string(loss_chart.find_child_by_attribute("text", "class", "y-label").child_value()).find("log scale"),
            std::string::npos)
      << "a loss falling over two decades is drawn on a log scale";

  // Self-contained: no scripts, style sheets, fonts or images from elsewhere.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("http://www.w3.org/2000/svg") != std::string::npos, true);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);

  // The summary gives the last evaluation, the skipped step and the unreadable line.
  EXPECT_NE(html.find("val_psnr</th><td class=\"n\">19.5<"), std::string::npos);
  EXPECT_NE(html.find("1 (first at step 11)"), std::string::npos);
  EXPECT_NE(html.find("unreadable lines in metrics.jsonl</th><td class=\"n\">1<"), std::string::npos);

  // The configuration, pretty-printed and intact.
  const auto config = doc.select_node("//pre[@class='config']").node();
  const std::string config_text = config.child_value();
  EXPECT_NE(config_text.find("\n  \"kind\": \"vqvae\""), std::string::npos) << config_text;
  EXPECT_EQ(nlohmann::json::parse(config_text), nlohmann::json::parse(test::read_text(dir.file("config.json"))));
}

TEST(Report, EmbedsTheNewestGridOfEachKind) {
  test::TempDir dir;
  write_vqvae_run(dir);
  const std::string old_grid = "\x89PNG\r\n\x1a\nold", new_grid = std::string("\x89PNG\r\n\x1a\nnew\0\xff\x10", 14);
  test::write_bytes(dir.file("grids/reconstructions-000030.png"), old_grid);
  test::write_bytes(dir.file("grids/reconstructions-000100.png"), new_grid);
  test::write_bytes(dir.file("grids/reconstructions-000100.png.tmp.1.0"), "a write in progress");
  test::write_bytes(dir.file("grids/samples.png"), "\x89PNG\r\n\x1a\nsamples!");
  const auto doc = parse_xml(write_report(dir.path()));
  std::map<std::string, std::string> images;
  for (const auto& img : doc.select_nodes("//img")) {
    const std::string src = img.node().attribute("src").value();
    const std::string prefix = "data:image/png;base64,";
    ASSERT_EQ(src.rfind(prefix, 0), 0u) << src.substr(0, 40);
    images[img.node().attribute("alt").value()] = decode_base64(src.substr(prefix.size()));
  }
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images["reconstructions"], new_grid);
  EXPECT_EQ(images["samples"], "\x89PNG\r\n\x1a\nsamples!");
}

TEST(Report, DrawsFiguresItDoesNotKnowByName) {
  test::TempDir dir;
  const std::string log =
      "{\"step\":1,\"elbo\":-900.5,\"kl\":12.0}\n{\"step\":2,\"elbo\":-400.25,\"kl\":20.5}\n"
      "{\"event\":\"eval\",\"step\":2,\"val_elbo\":-450.0,\"val_bits_per_dim\":1.25}\n";
  test::write_bytes(dir.file("metrics.jsonl"), log);
  const auto doc = parse_xml(write_report(dir.path()));
  std::vector<std::string> titles;
  for (const auto& t : doc.select_nodes("//*[local-name()='text'][@class='title']")) titles.emplace_back(t.node().child_value());
  EXPECT_EQ(titles, (std::vector<std::string>{"NLL per image dimension", "elbo", "kl"}));
  EXPECT_EQ(check_charts_against_log(doc, expected_from(log)),
            (std::vector<std::string>{"val_bits_per_dim", "elbo", "val_elbo", "kl"}));
  EXPECT_NE(test::read_text(dir.file("report.html")).find("No config.json"), std::string::npos);
}

TEST(Report, RewritesInPlaceAndRefusesAMissingFolder) {
  test::TempDir dir;
  write_vqvae_run(dir);
  write_report(dir.path());
  test::write_bytes(dir.file("metrics.jsonl"), "{\"step\":1,\"loss\":1.0}\n{\"step\":2,\"loss\":0.5}\n");
  write_report(dir.path());
  EXPECT_EQ(test::read_text(dir.file("report.html")).find("val_psnr"), std::string::npos) << "the new log's report";
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();
  }
  EXPECT_THROW(write_report(dir.file("absent")), Error);
}

// ---- comparing runs --------------------------------------------------------------------------------

void write_run(const std::string& folder, const std::string& log) {
  fs::create_directories(folder);
  test::write_bytes((fs::path(folder) / "metrics.jsonl").string(), log);
}

TEST(Plot, OverlaysRunsOneColourEachOnTheirHeadlineFigure) {
  test::TempDir dir;
  const std::string a = "{\"event\":\"eval\",\"step\":0,\"val_mse\":0.5}\n{\"event\":\"eval\",\"step\":100,\"val_mse\":0.02}\n";
  const std::string b = "{\"event\":\"eval\",\"step\":0,\"val_mse\":0.4}\n{\"event\":\"eval\",\"step\":50,\"val_mse\":0.1}\n"
                        "{\"event\":\"eval\",\"step\":200,\"val_mse\":0.01}\n";
  write_run(dir.file("small"), a);
  write_run(dir.file("wide"), b);
  write_plot({dir.file("small"), dir.file("wide")}, {}, dir.file("curves.svg"));
  const auto doc = parse_xml(dir.file("curves.svg"));
  const auto polylines = doc.select_nodes("//*[local-name()='polyline']");
  ASSERT_EQ(polylines.size(), 2u);
  EXPECT_STREQ(polylines[0].node().attribute("data-run").value(), "small");
  EXPECT_STREQ(polylines[1].node().attribute("data-run").value(), "wide");
  EXPECT_STRNE(polylines[0].node().attribute("stroke").value(), polylines[1].node().attribute("stroke").value());
  std::vector<std::string> legend;
  for (const auto& t : doc.select_nodes("//*[@class='legend']/*[local-name()='text']")) legend.emplace_back(t.node().child_value());
  EXPECT_EQ(legend, (std::vector<std::string>{"small", "wide"}));
  // Each run's points, read back through the chart's axes.
  for (const auto& [run, log] : {std::pair{"small", a}, std::pair{"wide", b}}) {
    const auto chart = doc.select_node(("//*[local-name()='svg'][*[@data-run='" + std::string(run) + "']]").c_str()).node();
    const auto x = read_axis(chart, "tick-x", false);
    const std::string y_label = chart.find_child_by_attribute("text", "class", "y-label").child_value();
    EXPECT_NE(y_label.find("log scale"), std::string::npos) << "MSE from 0.5 to 0.01";
    const auto y = read_axis(chart, "tick-y", true);
    const auto points = points_of(chart.find_child_by_attribute("polyline", "data-run", run));
    const auto logged = expected_from(log).at("val_mse");
    ASSERT_EQ(points.size(), logged.size());
    for (size_t i = 0; i < points.size(); ++i) {
      EXPECT_NEAR(points[i].first, x.pixel_of(logged[i].first), 0.2);
      EXPECT_NEAR(points[i].second, y.pixel_of(logged[i].second), 0.2);
    }
  }
}

TEST(Plot, ArrayFiguresGiveOneDashedLinePerLevelAndChartsStack) {
  test::TempDir dir;
  const std::string log = "{\"step\":1,\"loss\":1.0,\"usage\":[0.5,0.25]}\n{\"step\":2,\"loss\":0.8,\"usage\":[0.75,0.5]}\n";
  write_run(dir.file("a/vqvae"), log);
  write_run(dir.file("b/vqvae"), log);
  write_plot({dir.file("a/vqvae"), dir.file("b/vqvae")}, {"usage", "loss"}, dir.file("curves.svg"));
  const auto doc = parse_xml(dir.file("curves.svg"));
  const auto charts = doc.select_nodes("/*/*[local-name()='svg']");
  ASSERT_EQ(charts.size(), 2u);
  EXPECT_GT(charts[1].node().attribute("y").as_double(), charts[0].node().attribute("y").as_double());
  const auto usage = charts[0].node();
  std::vector<std::string> keys, dashes;
  for (const auto& p : usage.children("polyline")) {
    keys.emplace_back(p.attribute("data-key").value());
    dashes.emplace_back(p.attribute("stroke-dasharray").value());
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"usage[0]", "usage[1]", "usage[0]", "usage[1]"}));
  EXPECT_NE(dashes[0], dashes[1]);
  std::string first_legend = usage.select_node("*[@class='legend']/*[local-name()='text']").node().child_value();
  EXPECT_EQ(first_legend, dir.file("a/vqvae") + " usage[0]") << "two runs called vqvae are named by their paths";
  EXPECT_EQ(check_charts_against_log(doc, expected_from(log)).size(), 6u);
  // Usage is scaled as in the report: linear, from zero.
  EXPECT_STREQ(usage.find_child_by_attribute("text", "class", "y-label").child_value(), "fraction of codes used");
  EXPECT_STREQ(usage.find_child_by_attribute("g", "class", "tick-y").child("text").child_value(), "0");
  // The plot areas line up although the legends differ.
  EXPECT_STREQ(usage.find_child_by_attribute("rect", "class", "frame").attribute("width").value(),
               charts[1].node().find_child_by_attribute("rect", "class", "frame").attribute("width").value());
}

TEST(Plot, UnknownKeysAndFoldersWithoutALogAreRefused) {
  test::TempDir dir;
  write_run(dir.file("run"), "{\"step\":1,\"loss\":1.0}\n");
  try {
    write_plot({dir.file("run")}, {"val_msee"}, dir.file("out.svg"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no run has a figure 'val_msee'; the runs have: loss"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.file("out.svg")));
  EXPECT_THROW(write_plot({dir.path()}, {}, dir.file("out.svg")), Error);
}

}  // namespace
}  // namespace vqvae2
