#include "vqvae2/core/report.h"

#include "chart_reader.h"
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

using namespace test::chart_reader;

namespace fs = std::filesystem;

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
