#include "lanrelay/content/activeupdate_index.hpp"

#include <boost/system/system_error.hpp>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace lanrelay::activeupdate {
namespace {

// A server.ini in the shape public AU trees use: counters, Merge diffs, an old-style Path_ entry
// naming the same file as a P. line, engines, a program package, unknown sections and keys.
constexpr std::string_view sample_lf =
    "; ActiveUpdate index for OfficeScan 14\n"
    "[Server]\n"
    "Server.1=http://osce14-p.activeupdate.trendmicro.com/activeupdate\n"
    "Server.2 = http://osce14-p2.activeupdate.trendmicro.com/activeupdate\n"
    "; secure source\n"
    "Https=https://osce14-p.activeupdate.trendmicro.com/activeupdate\n"
    "AllowHttps=1\n"
    "\n"
    "[PATTERN]\n"
    "MergeCount=3\n"
    "P.48020000=pattern/icrc/ioth1667900.zip,1667900,21493610\n"
    "P.48020000.MergeCount=2\n"
    "P.48020000.Merge.1=pattern/icrc/ioth_1667700.1667900,1667700,716\n"
    "P.48020000.Merge.2=pattern/icrc/ioth_1667500.1667900,1667500,1830\n"
    "P.4=pattern/lpt$vpn.zip,16.679.00,51200000\n"
    "P.4.MergeCount=1\n"
    "P.4.Merge.1=pattern/lpt$vpn_1667800.1667900,1667800,40960\n"
    "Path_VSAPI=pattern/lpt$vpn.zip,51200000\n"
    "Path_TMWHITE=pattern/tmwhite/tmwhite.zip,12345\n"
    "\n"
    "[ENGINE]\n"
    "E.4=VSAPI32_NT_I386,engine/engv_nt386_v12500-1004.zip,12.500.1004,1350445,6.510.1002\n"
    "E.8=VSAPI64_NT_AMD64,engine/engv_nt_amd64_v12500-1004.zip,12.500.1004,1633901,6.510.1002\n"
    "\n"
    "[Info_1000_1_1_1]\n"
    "Version=14.0\n"
    "Build=2146\n"
    "Path=product/osce14/osce14_sp1_patch3_2146.zip,104857600\n"
    "Description=OfficeScan 14 SP1 Patch 3\n"
    "\n"
    "[All_Product]\n"
    "Count=2\n"
    "a line an older tool left behind\n"
    "# the end\n";

std::string crlf(std::string_view lf) {
  std::string out;
  for (char c : lf) {
    if (c == '\n') {
      out += '\r';
    }
    out += c;
  }
  return out;
}

index parsed(std::string_view text) {
  auto r = parse(text);
  EXPECT_TRUE(r.has_value()) << (r.has_value() ? "" : r.error().to_string());
  return r.has_value() ? std::move(*r) : index{};
}

// ---------------------------------------------------------------------------------------------
// Lossless model

TEST(activeupdate_index, round_trips_exact_bytes) {
  const std::string inputs[] = {
      std::string(sample_lf),
      crlf(sample_lf),
      "",
      "\n",
      "\r\n",
      "[PATTERN]",                                        // no final line ending
      "[PATTERN]\r\nP.1=a.zip,1,2\nP.2=b.zip,1,2\r\n",  // mixed endings
      "\xEF\xBB\xBF[Server]\r\nServer.1=http://x/\r\n",  // UTF-8 BOM
      "  [ Server ]  ; trailing comment\n\tServer.1\t=\t http://x  \n",
      "key before any section\n=\n==\nx=y\r",              // lone CR at the end
      "[Other]\n\x01\x02 binary\x7f\xff\n[PATTERN]\n\n",
  };
  for (const auto& text : inputs) {
    const auto doc = parsed(text);
    EXPECT_EQ(serialize(doc), text);
  }
}

TEST(activeupdate_index, keeps_line_kinds_names_and_endings) {
  const auto doc = parsed("\xEF\xBB\xBF; c\r\n[ Server ]\nServer.1 = http://a/ \n\n[Other]\r\nstray\n# c");
  const auto& lines = doc.lines();
  ASSERT_EQ(lines.size(), 7u);
  EXPECT_EQ(lines[0].kind, line_kind::comment);
  EXPECT_EQ(lines[0].ending, "\r\n");
  EXPECT_EQ(lines[1].kind, line_kind::section);
  EXPECT_EQ(lines[1].name, "Server");
  EXPECT_EQ(lines[2].kind, line_kind::entry);
  EXPECT_EQ(lines[2].name, "Server.1");
  EXPECT_EQ(lines[2].value, "http://a/");
  EXPECT_EQ(lines[2].text.substr(lines[2].value_begin, lines[2].value.size()), "http://a/");
  EXPECT_EQ(lines[2].section, 2u);
  EXPECT_EQ(lines[3].kind, line_kind::blank);
  EXPECT_EQ(lines[4].kind, line_kind::section);
  EXPECT_EQ(lines[4].ending, "\r\n");
  EXPECT_EQ(lines[5].kind, line_kind::other);  // kept verbatim outside interpreted sections
  EXPECT_EQ(lines[5].section, 5u);
  EXPECT_EQ(lines[6].kind, line_kind::comment);
  EXPECT_EQ(lines[6].ending, "");
}

TEST(activeupdate_index, keeps_unknown_sections_keys_and_stray_lines) {
  const auto doc = parsed(sample_lf);
  EXPECT_EQ(doc.value("all_product", "COUNT"), "2");
  EXPECT_EQ(doc.value("server", "allowhttps"), "1");
  EXPECT_EQ(doc.value("PATTERN", "MergeCount"), "3");
  EXPECT_EQ(doc.value("Info_1000_1_1_1", "Description"), "OfficeScan 14 SP1 Patch 3");
  EXPECT_FALSE(doc.value("PATTERN", "Nope"));
  bool stray_kept = false;
  for (const auto& l : doc.lines()) {
    if (l.text == "a line an older tool left behind") {
      stray_kept = l.kind == line_kind::other;
    }
  }
  EXPECT_TRUE(stray_kept);
  EXPECT_EQ(parsed("top=1\n[X]\n").value("", "TOP"), "1");
}

// ---------------------------------------------------------------------------------------------
// files(), patterns, engines, programs

TEST(activeupdate_index, lists_every_file_once_in_document_order) {
  for (const auto& text : {std::string(sample_lf), crlf(sample_lf)}) {
    const auto doc = parsed(text);
    const auto& files = doc.files();
    struct expected_file {
      std::string_view path;
      std::uint64_t size;
      file_kind kind;
      std::string_view component;
      std::string_view version;
      std::string_view from;
      std::uint32_t line;
    };
    const expected_file expected[] = {
        {"pattern/icrc/ioth1667900.zip", 21493610, file_kind::pattern_full, "48020000", "1667900", "", 11},
        {"pattern/icrc/ioth_1667700.1667900", 716, file_kind::pattern_merge, "48020000", "", "1667700", 13},
        {"pattern/icrc/ioth_1667500.1667900", 1830, file_kind::pattern_merge, "48020000", "", "1667500", 14},
        {"pattern/lpt$vpn.zip", 51200000, file_kind::pattern_full, "4", "16.679.00", "", 15},
        {"pattern/lpt$vpn_1667800.1667900", 40960, file_kind::pattern_merge, "4", "", "1667800", 17},
        {"pattern/tmwhite/tmwhite.zip", 12345, file_kind::path_entry, "TMWHITE", "", "", 19},
        {"engine/engv_nt386_v12500-1004.zip", 1350445, file_kind::engine, "4", "12.500.1004", "", 22},
        {"engine/engv_nt_amd64_v12500-1004.zip", 1633901, file_kind::engine, "8", "12.500.1004", "", 23},
        {"product/osce14/osce14_sp1_patch3_2146.zip", 104857600, file_kind::program, "1000_1_1_1", "14.0",
         "", 28},
    };
    ASSERT_EQ(files.size(), std::size(expected));
    for (std::size_t i = 0; i < files.size(); ++i) {
      SCOPED_TRACE(files[i].path);
      EXPECT_EQ(files[i].path, expected[i].path);
      EXPECT_EQ(files[i].size, expected[i].size);
      EXPECT_EQ(files[i].kind, expected[i].kind);
      EXPECT_EQ(files[i].component, expected[i].component);
      EXPECT_EQ(files[i].version, expected[i].version);
      EXPECT_EQ(files[i].from_version, expected[i].from);
      EXPECT_EQ(files[i].line, expected[i].line);
      EXPECT_TRUE(is_safe_relative_path(files[i].path));
    }
  }
}

TEST(activeupdate_index, a_mirror_fetches_a_signature_for_every_zip) {
  const auto doc = parsed(sample_lf);
  std::vector<std::string> signatures;
  for (const auto& f : doc.files()) {
    if (needs_signature(f.path)) {
      signatures.push_back(signature_path(f.path));
      EXPECT_TRUE(is_safe_relative_path(signatures.back()));
    }
  }
  const std::vector<std::string> expected = {
      "pattern/icrc/ioth1667900.sig",          "pattern/lpt$vpn.sig",
      "pattern/tmwhite/tmwhite.sig",           "engine/engv_nt386_v12500-1004.sig",
      "engine/engv_nt_amd64_v12500-1004.sig", "product/osce14/osce14_sp1_patch3_2146.sig",
  };
  EXPECT_EQ(signatures, expected);
  EXPECT_TRUE(needs_signature("a/B.ZIP"));
  EXPECT_EQ(signature_path("a/B.ZIP"), "a/B.SIG");
  EXPECT_EQ(signature_path("a/B.Zip"), "a/B.sig");
  EXPECT_FALSE(needs_signature(".zip"));
  EXPECT_FALSE(needs_signature("a/b.zip.1667900"));
  EXPECT_FALSE(needs_signature("pattern/icrc/ioth_1667700.1667900"));
  EXPECT_FALSE(needs_signature("zip"));
}

TEST(activeupdate_index, pattern_gives_full_file_and_diffs) {
  const auto doc = parsed(crlf(sample_lf));
  ASSERT_EQ(doc.patterns().size(), 2u);
  const auto p = doc.pattern("48020000");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->path, "pattern/icrc/ioth1667900.zip");
  EXPECT_EQ(p->version.value, 1667900u);
  EXPECT_EQ(p->size, 21493610u);
  EXPECT_EQ(p->line, 11u);
  ASSERT_EQ(p->merges.size(), 2u);
  EXPECT_EQ(p->merges[0].path, "pattern/icrc/ioth_1667700.1667900");
  EXPECT_EQ(p->merges[0].from.value, 1667700u);
  EXPECT_EQ(p->merges[0].to, pattern_version{1667900});
  EXPECT_EQ(p->merges[0].size, 716u);
  EXPECT_EQ(p->merges[0].number, "1");
  EXPECT_EQ(p->merges[1].from.value, 1667500u);

  const auto four = doc.pattern("4");
  ASSERT_TRUE(four);
  EXPECT_EQ(four->version.value, 1667900u);  // written in display form 16.679.00
  EXPECT_FALSE(doc.pattern("5"));
  EXPECT_FALSE(doc.pattern("E.4"));
}

TEST(activeupdate_index, component_ids_are_case_insensitive) {
  const auto doc = parsed("[pattern]\np.Ab=a.zip,2,1\nP.aB.merge.1=a_1.2,1,1\n");
  const auto p = doc.pattern("AB");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->id, "Ab");
  EXPECT_EQ(p->merges.size(), 1u);
}

TEST(activeupdate_index, merge_lines_without_a_full_file_are_listed_but_not_a_pattern) {
  const auto doc = parsed("[PATTERN]\nP.7.Merge.1=p/x_100.200,100,5\n");
  ASSERT_EQ(doc.files().size(), 1u);
  EXPECT_EQ(doc.files()[0].kind, file_kind::pattern_merge);
  EXPECT_FALSE(doc.pattern("7"));
  EXPECT_FALSE(doc.choose_update("7", pattern_version{100}));
}

TEST(activeupdate_index, engines_and_programs) {
  const auto doc = parsed(sample_lf);
  ASSERT_EQ(doc.engines().size(), 2u);
  const auto& e = doc.engines()[0];
  EXPECT_EQ(e.id, "4");
  EXPECT_EQ(e.name, "VSAPI32_NT_I386");
  EXPECT_EQ(e.path, "engine/engv_nt386_v12500-1004.zip");
  EXPECT_EQ(e.version, (dotted_version{12, 500, 1004, 0}));
  EXPECT_EQ(e.size, 1350445u);
  EXPECT_EQ(e.minimum, (dotted_version{6, 510, 1002, 0}));
  EXPECT_EQ(e.line, 22u);

  ASSERT_EQ(doc.programs().size(), 1u);
  const auto& p = doc.programs()[0];
  EXPECT_EQ(p.section, "Info_1000_1_1_1");
  EXPECT_EQ(p.version, (dotted_version{14, 0, 0, 0}));
  EXPECT_EQ(p.build, (dotted_version{2146, 0, 0, 0}));
  EXPECT_EQ(p.path, "product/osce14/osce14_sp1_patch3_2146.zip");
  EXPECT_EQ(p.size, 104857600u);
}

TEST(activeupdate_index, program_version_after_path_still_labels_the_file) {
  const auto doc = parsed("[INFO_1_2_3_4]\nPath=p/a.zip,10\nVersion=1.2.3\n[Info_9]\nVersion=2\n");
  ASSERT_EQ(doc.files().size(), 1u);
  EXPECT_EQ(doc.files()[0].version, "1.2.3");
  EXPECT_EQ(doc.files()[0].component, "1_2_3_4");
  ASSERT_EQ(doc.programs().size(), 2u);
  EXPECT_FALSE(doc.programs()[1].path);
  EXPECT_EQ(doc.programs()[1].line, 4u);
}

TEST(activeupdate_index, extra_trailing_fields_and_spaces_are_accepted) {
  const auto doc = parsed(
      "[PATTERN]\nP.1 = a/b.zip , 1667900 , 20 , future\n"
      "[ENGINE]\nE.1=N, e/n.zip, 1.2.3, 5, 1.0, extra, more\n");
  ASSERT_EQ(doc.files().size(), 2u);
  EXPECT_EQ(doc.files()[0].path, "a/b.zip");
  EXPECT_EQ(doc.files()[0].size, 20u);
  EXPECT_EQ(doc.files()[1].path, "e/n.zip");
}

TEST(activeupdate_index, same_path_with_same_size_is_listed_once) {
  const auto doc = parsed("[PATTERN]\nP.1=a.zip,5,9\nPath_A=a.zip,9\n[ENGINE]\nE.1=n,a.zip,1,9,1\n");
  ASSERT_EQ(doc.files().size(), 1u);
  EXPECT_EQ(doc.files()[0].kind, file_kind::pattern_full);
  EXPECT_EQ(doc.engines().size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// choose_update

TEST(activeupdate_index, choose_update_prefers_the_matching_diff) {
  const auto doc = parsed(sample_lf);
  const auto diff = doc.choose_update("48020000", pattern_version{1667700});
  ASSERT_TRUE(diff);
  EXPECT_TRUE(diff->is_diff);
  EXPECT_EQ(diff->path, "pattern/icrc/ioth_1667700.1667900");
  EXPECT_EQ(diff->size, 716u);
  EXPECT_EQ(diff->to.value, 1667900u);

  const auto second = doc.choose_update("48020000", pattern_version{1667500});
  ASSERT_TRUE(second);
  EXPECT_TRUE(second->is_diff);
  EXPECT_EQ(second->path, "pattern/icrc/ioth_1667500.1667900");
}

TEST(activeupdate_index, choose_update_falls_back_to_the_full_file) {
  const auto doc = parsed(sample_lf);
  for (const std::uint64_t local : {0ULL, 1667600ULL, 1667800ULL, 1500000ULL}) {
    const auto full = doc.choose_update("48020000", pattern_version{local});
    ASSERT_TRUE(full) << local;
    EXPECT_FALSE(full->is_diff);
    EXPECT_EQ(full->path, "pattern/icrc/ioth1667900.zip");
    EXPECT_EQ(full->size, 21493610u);
  }
}

TEST(activeupdate_index, choose_update_gives_nothing_when_current_or_unknown) {
  const auto doc = parsed(sample_lf);
  EXPECT_FALSE(doc.choose_update("48020000", pattern_version{1667900}));
  EXPECT_FALSE(doc.choose_update("48020000", pattern_version{1668100}));  // never a downgrade
  EXPECT_FALSE(doc.choose_update("99", pattern_version{1}));
}

TEST(activeupdate_index, choose_update_skips_diffs_that_do_not_lead_to_the_current_version) {
  const auto doc = parsed(
      "[PATTERN]\n"
      "P.1=p/full.zip,1667900,100\n"
      "P.1.Merge.1=p/x_1667700.1667800,1667700,5\n"  // stale: leads to 1667800
      "P.1.Merge.2=p/diff-1667600,1667600,5\n"        // name does not show <to>
      "P.1.Merge.3=p/x_1667000.1667900,1667500,5\n"  // name's <from> disagrees with the field
      "P.1.Merge.4=p/x_1667700.1667900,1667700,7\n");
  const auto p = doc.pattern("1");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->merges[0].to, pattern_version{1667800});
  EXPECT_FALSE(p->merges[1].to);
  EXPECT_FALSE(p->merges[2].to);
  const auto from_1667700 = doc.choose_update("1", pattern_version{1667700});
  ASSERT_TRUE(from_1667700);
  EXPECT_TRUE(from_1667700->is_diff);
  EXPECT_EQ(from_1667700->path, "p/x_1667700.1667900");
  for (const std::uint64_t local : {1667600ULL, 1667500ULL}) {
    const auto c = doc.choose_update("1", pattern_version{local});
    ASSERT_TRUE(c);
    EXPECT_FALSE(c->is_diff) << local;
  }
}

// ---------------------------------------------------------------------------------------------
// rewrite_server_section

TEST(activeupdate_index, rewrite_changes_only_server_urls) {
  const auto doc = parsed(sample_lf);
  const auto out = rewrite_server_section(doc, "http://relay.lan:4127/au");
  ASSERT_TRUE(out);
  std::string expected(sample_lf);
  const auto replace = [&](std::string_view from, std::string_view to) {
    const auto at = expected.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    expected.replace(at, from.size(), to);
  };
  replace("Server.1=http://osce14-p.activeupdate.trendmicro.com/activeupdate",
          "Server.1=http://relay.lan:4127/au");
  replace("Server.2 = http://osce14-p2.activeupdate.trendmicro.com/activeupdate",
          "Server.2 = http://relay.lan:4127/au");
  replace("Https=https://osce14-p.activeupdate.trendmicro.com/activeupdate", "Https=http://relay.lan:4127/au");
  EXPECT_EQ(*out, expected);

  // The rewritten index is still a valid index naming the same files.
  const auto again = parsed(*out);
  EXPECT_EQ(serialize(again), *out);
  EXPECT_EQ(again.files().size(), doc.files().size());
}

TEST(activeupdate_index, rewrite_keeps_crlf_spacing_comments_and_other_sections) {
  const std::string text = crlf(
      "[Other]\nServer.1=http://keep/\n"
      "[server] ; comment\n\tserver.1\t=\t http://a/  \nServer.x=keep\nHTTPS=\n; Server.2=http://c/\n"
      "Server.10=http://b/\r\n[PATTERN]\nServer.1=not-a-url-key-here\n");
  const auto doc = parsed(text);
  const auto out = rewrite_server_section(doc, "http://m/");
  ASSERT_TRUE(out);
  EXPECT_EQ(*out, crlf("[Other]\nServer.1=http://keep/\n"
                       "[server] ; comment\n\tserver.1\t=\t http://m/  \nServer.x=keep\nHTTPS=http://m/\n"
                       "; Server.2=http://c/\nServer.10=http://m/\r\n[PATTERN]\nServer.1=not-a-url-key-here\n"));
}

TEST(activeupdate_index, rewrite_without_server_section_changes_nothing) {
  const std::string text = crlf("[PATTERN]\nP.1=a.zip,1,2\n[Other]\nServer.1=http://x/\n");
  const auto doc = parsed(text);
  const auto out = rewrite_server_section(doc, "http://m/");
  ASSERT_TRUE(out);
  EXPECT_EQ(*out, text);
}

TEST(activeupdate_index, rewrite_refuses_urls_that_could_break_lines) {
  const auto doc = parsed(sample_lf);
  for (const std::string_view url : {std::string_view{}, std::string_view("http://m/\r\n[PATTERN]"),
                                     std::string_view("http://m/\n"), std::string_view("a\0b", 3)}) {
    const auto out = rewrite_server_section(doc, url);
    ASSERT_FALSE(out);
    EXPECT_EQ(out.error(), make_error_code(errc::bad_url));
  }
}

// ---------------------------------------------------------------------------------------------
// Paths

TEST(activeupdate_index, safe_paths) {
  for (const std::string_view path :
       {"a", "pattern/icrc/ioth1667900.zip", "pattern/lpt$vpn.zip", "a/b-c_d.e+f~(1)", "...", ".sig",
        "a/.hidden", "a..b/c..", "A/B/C/D"}) {
    EXPECT_TRUE(is_safe_relative_path(path)) << path;
  }
  EXPECT_TRUE(is_safe_relative_path(std::string(255, 'a') + "/" + std::string(255, 'b')));
}

TEST(activeupdate_index, unsafe_paths) {
  const std::string unsafe[] = {
      "",
      "../x",
      "a/../../x",
      "a/..",
      "..",
      ".",
      "./a",
      "a/./b",
      "/etc/passwd",
      "//server/share",
      "a//b",
      "a/",
      "a\\b",
      "..\\..\\windows",
      "C:/windows",
      "http://evil/x",
      "%2e%2e/x",  // refused: '%' means a percent escape once the path is a URL
      "a%2fb",
      "a b",
      "a?b",
      "a#b",
      "a*b",
      "a\"b",
      "a<b",
      "a>b",
      "a|b",
      std::string("a\0b", 3),
      "a\tb",
      "a\rb",
      "a\x7f",
      "caf\xc3\xa9",
      std::string(256, 'a'),
      std::string(1025, 'a'),
  };
  for (const auto& path : unsafe) {
    EXPECT_FALSE(is_safe_relative_path(path)) << path;
  }
  // Long paths are bounded as a whole, not only per segment.
  std::string long_path;
  while (long_path.size() <= max_path_length) {
    long_path += "abcdefghi/";
  }
  long_path += "x";
  EXPECT_FALSE(is_safe_relative_path(long_path));
}

TEST(activeupdate_index, every_unsafe_path_rejects_the_index_with_its_line) {
  const char* bad[] = {"../x.zip", "/etc/passwd", "a//b", "a\\b", "%2e%2e/x", "a/./b", "a/"};
  for (const char* path : bad) {
    SCOPED_TRACE(path);
    const std::string docs[] = {
        std::string("[PATTERN]\nP.1=ok.zip,1,1\nP.2=") + path + ",1,1\n",
        std::string("[PATTERN]\n\nP.1.Merge.1=") + path + ",1,1\n",
        std::string("[PATTERN]\n\nPath_X=") + path + ",1\n",
        std::string("[ENGINE]\n\nE.1=n,") + path + ",1.0,1,1.0\n",
        std::string("[Info_1_2_3_4]\nVersion=1\nPath=") + path + ",1\n",
    };
    for (const auto& text : docs) {
      const auto r = parse(text);
      ASSERT_FALSE(r) << text;
      EXPECT_EQ(r.error().code, errc::bad_path);
      EXPECT_EQ(r.error().line, 3u);
      EXPECT_NE(r.error().message.find("refused"), std::string::npos) << r.error().message;
    }
  }
}

TEST(activeupdate_index, paths_in_unknown_sections_are_not_interpreted) {
  // Nothing there is fetched, so nothing there can make the mirror write.
  const auto doc = parsed("[All_Product]\nPath=../../etc/passwd,1\nP.1=/abs,1,1\n");
  EXPECT_TRUE(doc.files().empty());
}

// ---------------------------------------------------------------------------------------------
// Errors

struct error_case {
  std::string text;
  errc code;
  std::uint32_t line;
};

TEST(activeupdate_index, reports_each_error_with_its_line) {
  const error_case cases[] = {
      // syntax
      {"[PATTERN\nP.1=a,1,1\n", errc::syntax, 1},
      {"; c\n[]\n", errc::syntax, 2},
      {"[PATTERN] P.1=a,1,1\n", errc::syntax, 1},
      {"[PATTERN]\r\nthis is not an entry\r\n", errc::syntax, 2},
      {"[ENGINE]\n\n=no key\n", errc::syntax, 3},
      {"[Info_1]\nstray\n", errc::syntax, 2},
      {"[Server]\nServer.1=x\nstray\n", errc::syntax, 3},
      {"[PATTERN]\nP.1=a.zip,1\n", errc::syntax, 2},
      {"[PATTERN]\nP.1=a.zip\n", errc::syntax, 2},
      {"[PATTERN]\nP.1.Merge.1=a_1.2,1\n", errc::syntax, 2},
      {"[PATTERN]\nP.=a.zip,1,1\n", errc::syntax, 2},
      {"[PATTERN]\nP.4 8=a.zip,1,1\n", errc::syntax, 2},
      {"[PATTERN]\nP.1.Merge.x=a.zip,1,1\n", errc::syntax, 2},
      {"[PATTERN]\nP.1.Merge.=a.zip,1,1\n", errc::syntax, 2},
      {"[PATTERN]\nPath_=a.zip,1\n", errc::syntax, 2},
      {"[PATTERN]\nPath_X=a.zip\n", errc::syntax, 2},
      {"[ENGINE]\nE.1=n,a.zip,1.0,5\n", errc::syntax, 2},
      {"[ENGINE]\nE.1=,a.zip,1.0,5,1.0\n", errc::syntax, 2},
      {"[ENGINE]\nE.=n,a.zip,1.0,5,1.0\n", errc::syntax, 2},
      {"[Info_1]\nPath=a.zip\n", errc::syntax, 2},
      // sizes
      {"[PATTERN]\nP.1=a.zip,1,12a\n", errc::bad_size, 2},
      {"[PATTERN]\nP.1=a.zip,1,-1\n", errc::bad_size, 2},
      {"[PATTERN]\nP.1=a.zip,1,+1\n", errc::bad_size, 2},
      {"[PATTERN]\nP.1=a.zip,1,\n", errc::bad_size, 2},
      {"[PATTERN]\nP.1=a.zip,1,18446744073709551616\n", errc::bad_size, 2},
      {"[PATTERN]\nP.1=a.zip,1,1 0\n", errc::bad_size, 2},
      {"[PATTERN]\nP.1=a.zip,1,0x10\n", errc::bad_size, 2},
      {"[PATTERN]\n\nP.1.Merge.1=a_1.2,1,big\n", errc::bad_size, 3},
      {"[PATTERN]\nPath_X=a.zip,1.5\n", errc::bad_size, 2},
      {"[ENGINE]\nE.1=n,a.zip,1.0,five,1.0\n", errc::bad_size, 2},
      {"[Info_1]\nPath=a.zip,\n", errc::bad_size, 2},
      // versions
      {"[PATTERN]\nP.1=a.zip,16.679,1\n", errc::bad_version, 2},
      {"[PATTERN]\nP.1=a.zip,,1\n", errc::bad_version, 2},
      {"[PATTERN]\nP.1=a.zip,v1667900,1\n", errc::bad_version, 2},
      {"[PATTERN]\nP.1=a.zip,99999999999999999999,1\n", errc::bad_version, 2},
      {"[PATTERN]\nP.1.Merge.1=a_1.2,x,1\n", errc::bad_version, 2},
      {"[ENGINE]\nE.1=n,a.zip,12.x,1,1.0\n", errc::bad_version, 2},
      {"[ENGINE]\nE.1=n,a.zip,1.2.3.4.5,1,1.0\n", errc::bad_version, 2},
      {"[ENGINE]\nE.1=n,a.zip,1.0,1,\n", errc::bad_version, 2},
      {"[Info_1]\nVersion=v14\n", errc::bad_version, 2},
      {"[Info_1]\nBuild=abc\n", errc::bad_version, 2},
      // duplicates, also across a repeated section and in other letter case
      {"[PATTERN]\nP.1=a.zip,1,1\nP.1=b.zip,1,1\n", errc::duplicate_key, 3},
      {"[PATTERN]\nP.1=a.zip,1,1\n[ENGINE]\n[pattern]\np.1=b.zip,1,1\n", errc::duplicate_key, 5},
      {"[PATTERN]\nP.1.Merge.1=a_1.2,1,1\nP.1.MERGE.1=b_1.2,1,1\n", errc::duplicate_key, 3},
      {"[PATTERN]\nPath_X=a.zip,1\npath_x=b.zip,1\n", errc::duplicate_key, 3},
      {"[ENGINE]\nE.1=n,a.zip,1,1,1\nE.1=n,b.zip,1,1,1\n", errc::duplicate_key, 3},
      {"[Info_1]\nPath=a.zip,1\nPath=b.zip,1\n", errc::duplicate_key, 3},
      {"[Info_1]\nVersion=1\nVERSION=2\n", errc::duplicate_key, 3},
      {"[Server]\nServer.1=a\nServer.1=b\n", errc::duplicate_key, 3},
      {"[Server]\nHttps=a\n\nhttps=b\n", errc::duplicate_key, 4},
      // one path, two sizes
      {"[PATTERN]\nP.1=a.zip,1,10\n[ENGINE]\nE.1=n,a.zip,1,11,1\n", errc::conflicting_entry, 4},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    const auto r = parse(c.text);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, c.code) << r.error().message;
    EXPECT_EQ(r.error().line, c.line) << r.error().message;
    EXPECT_FALSE(r.error().message.empty());
    EXPECT_EQ(r.error().to_string("au/server.ini").rfind("au/server.ini:" + std::to_string(c.line) + ": ", 0),
              0u);
  }
}

TEST(activeupdate_index, duplicates_of_uninterpreted_keys_are_kept) {
  const auto doc = parsed(
      "[PATTERN]\nMergeCount=1\nMergeCount=2\nP.1.MergeCount=1\nP.1.MergeCount=1\n"
      "[Server]\nProxy=a\nProxy=b\n[Other]\nP.1=x\nP.1=y\n");
  EXPECT_EQ(doc.value("PATTERN", "MergeCount"), "1");
}

TEST(activeupdate_index, error_messages_quote_untrusted_text_safely) {
  const auto r = parse(std::string("[PATTERN]\nP.1=a\x1b[2J\"b,1,1\n"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::bad_path);
  EXPECT_EQ(r.error().message.find('\x1b'), std::string::npos);
  EXPECT_NE(r.error().message.find("\\x1b"), std::string::npos);
  EXPECT_NE(r.error().message.find("\"P.1\""), std::string::npos);
  EXPECT_EQ(r.error().to_string(), "server.ini:2: " + r.error().message);
}

TEST(activeupdate_index, refuses_documents_no_server_ini_reaches) {
  const std::string big(max_document_bytes + 1, '\n');
  const auto r = parse(big);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::too_large);
  EXPECT_EQ(r.error().line, 0u);

  const std::string many(max_document_lines + 1, '\n');
  const auto m = parse(many);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, errc::too_large);
  EXPECT_EQ(m.error().line, max_document_lines + 1);

  const std::string just(max_document_lines, '\n');
  EXPECT_TRUE(parse(just));
}

TEST(activeupdate_index, errors_have_a_category_and_throw_with_the_message) {
  const auto ec = make_error_code(errc::bad_path);
  EXPECT_STREQ(ec.category().name(), "lanrelay.activeupdate");
  EXPECT_FALSE(ec.message().empty());
  for (int e = 1; e <= static_cast<int>(errc::bad_url); ++e) {
    EXPECT_EQ(make_error_code(static_cast<errc>(e)).message().find("unknown"), std::string::npos);
  }
  const boost::system::error_code converted = errc::syntax;
  EXPECT_EQ(converted, make_error_code(errc::syntax));

  const auto r = parse("[PATTERN]\nP.1=../a,1,1\n");
  try {
    (void)r.value();
    FAIL() << "value() did not throw";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), make_error_code(errc::bad_path));
    EXPECT_NE(std::string(e.what()).find("server.ini:2:"), std::string::npos);
  }
}

}  // namespace
TEST(activeupdate_segment_name, paths_map_to_valid_item_names_and_back) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"pattern/lpt$vpn.679", "pattern+2flpt+24vpn.679"},
      {"engine/vsapi64.zip", "engine+2fvsapi64.zip"},
      {"a+b", "a+2bb"},
      {"Pattern/ICRC$OTH.1234.merge.1233", "Pattern+2fICRC+24OTH.1234.merge.1233"},
  };
  for (const auto& [path, name] : cases) {
    EXPECT_EQ(segment_item_name(path), name);
    EXPECT_TRUE(is_valid_name(name)) << name;
    EXPECT_EQ(path_from_segment_item_name(name), path);
  }
  EXPECT_EQ(segment_item_name(".hidden"), std::nullopt);
  EXPECT_EQ(segment_item_name(std::string(129, 'a')), std::nullopt);
  EXPECT_EQ(path_from_segment_item_name("a+2"), std::nullopt);
  EXPECT_EQ(path_from_segment_item_name("a+2F"), std::nullopt);   // not canonical
  EXPECT_EQ(path_from_segment_item_name("a+61"), std::nullopt);   // 'a' needs no escape
  EXPECT_EQ(path_from_segment_item_name("a+zz"), std::nullopt);
}

}  // namespace lanrelay::activeupdate
