#include "lanrelay/relay/handler.hpp"

#include "lanrelay/relay/catalog_signer.hpp"
#include "lanrelay/relay/mirror_service.hpp"
#include "lanrelay/relay/range.hpp"

#include "lanrelay/content/partial_items.hpp"
#include "lanrelay/content/piece_list.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace lanrelay::relay {
namespace {

namespace http = boost::beast::http;
namespace fs = std::filesystem;

class relay_handler : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-handler.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto store = content_store::open({dir_ / "cache", 0});
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(*store);
    for (std::size_t i = 0; i < 1000; ++i) {
      content_.push_back(static_cast<char>('a' + i % 26));
    }
    blob_ = add({item_kind::file, "blob", "1"}, content_);
    add({item_kind::pattern, "vsapi", "16.679.00"}, "pattern bytes");
    add({item_kind::file, "empty", "1"}, "");
    etag_ = make_etag(blob_.sha256);
    handler_ = std::make_unique<request_handler>(*store_, slots_, counters_,
                                                 handler_settings{std::chrono::seconds(7)});
  }
  void TearDown() override {
    handler_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  item add(item_key key, std::string_view bytes) {
    auto writer = store_->begin_add(std::move(key));
    EXPECT_TRUE(writer);
    EXPECT_TRUE(writer->write(std::as_bytes(std::span(bytes.data(), bytes.size()))));
    auto committed = writer->commit(bytes.size(), std::nullopt);
    EXPECT_TRUE(committed) << committed.error().message();
    return *committed;
  }

  static http::request_header<> request(std::string_view target,
                                        http::verb method = http::verb::get, unsigned version = 11) {
    http::request_header<> h;
    h.method(method);
    h.target(target);
    h.version(version);
    h.set(http::field::host, "relay");
    return h;
  }

  static const small_response& small(const response_plan& plan) {
    EXPECT_TRUE(std::holds_alternative<small_response>(plan));
    return std::get<small_response>(plan);
  }
  static const file_transfer& transfer(const response_plan& plan) {
    EXPECT_TRUE(std::holds_alternative<file_transfer>(plan));
    return std::get<file_transfer>(plan);
  }

  static std::string read_range(const file_transfer& t) {
    std::string out(t.length, '\0');
    EXPECT_EQ(::pread(t.file.fd(), out.data(), out.size(), static_cast<off_t>(t.offset)),
              static_cast<ssize_t>(t.length));
    return out;
  }

  fs::path dir_;
  std::unique_ptr<content_store> store_;
  slot_pool slots_{2};
  relay_counters counters_;
  std::unique_ptr<request_handler> handler_;
  std::string content_;
  item blob_;
  std::string etag_;
};

TEST_F(relay_handler, get_plans_a_file_transfer_holding_a_slot) {
  {
    const response_plan plan = handler_->handle(request("/cache/file/blob/1"));
    const file_transfer& t = transfer(plan);
    EXPECT_EQ(t.head.result(), http::status::ok);
    EXPECT_EQ(t.head[http::field::content_length], "1000");
    EXPECT_EQ(t.head[http::field::content_type], "application/octet-stream");
    EXPECT_EQ(t.head[http::field::accept_ranges], "bytes");
    EXPECT_EQ(t.head[http::field::etag], etag_);
    EXPECT_TRUE(t.head.keep_alive());
    EXPECT_EQ(t.offset, 0U);
    EXPECT_EQ(t.length, 1000U);
    EXPECT_TRUE(t.slot.held());
    EXPECT_EQ(slots_.active(), 1U);
    EXPECT_EQ(read_range(t), content_);
  }
  EXPECT_EQ(slots_.active(), 0U);  // destroying the plan (the transfer's end) frees the slot
  EXPECT_EQ(slots_.peak(), 1U);
  EXPECT_EQ(counters_.requests.load(), 1U);
}

TEST_F(relay_handler, head_has_the_length_but_no_body_and_no_slot) {
  auto head = request("/cache/file/blob/1", http::verb::head);
  head.set(http::field::range, "bytes=0-9");  // Range applies to GET only
  const response_plan plan = handler_->handle(head);
  const small_response& res = small(plan);
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_length], "1000");
  EXPECT_EQ(res[http::field::etag], etag_);
  EXPECT_EQ(res.count(http::field::content_range), 0U);
  EXPECT_TRUE(res.body().empty());
  EXPECT_EQ(slots_.active(), 0U);
}

TEST_F(relay_handler, pattern_display_version_finds_the_canonical_item) {
  const response_plan plan = handler_->handle(request("/cache/pattern/vsapi/16.679.00"));
  EXPECT_EQ(transfer(plan).length, std::string_view("pattern bytes").size());
}

TEST_F(relay_handler, empty_item_is_a_small_response) {
  const response_plan plan = handler_->handle(request("/cache/file/empty/1"));
  const small_response& res = small(plan);
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_length], "0");
  EXPECT_EQ(slots_.active(), 0U);
}

TEST_F(relay_handler, range_gives_206) {
  auto req = request("/cache/file/blob/1");
  req.set(http::field::range, "bytes=10-19");
  const response_plan plan = handler_->handle(req);
  const file_transfer& t = transfer(plan);
  EXPECT_EQ(t.head.result(), http::status::partial_content);
  EXPECT_EQ(t.head[http::field::content_range], "bytes 10-19/1000");
  EXPECT_EQ(t.head[http::field::content_length], "10");
  EXPECT_EQ(read_range(t), content_.substr(10, 10));

  req.set(http::field::range, "bytes=-5");
  const response_plan suffix = handler_->handle(req);
  EXPECT_EQ(transfer(suffix).head[http::field::content_range], "bytes 995-999/1000");
  EXPECT_EQ(read_range(transfer(suffix)), content_.substr(995));
}

TEST_F(relay_handler, several_or_invalid_ranges_give_the_whole_item) {
  for (const char* value : {"bytes=0-1,5-6", "bytes=9-2", "lines=1-2", "bytes=x"}) {
    auto req = request("/cache/file/blob/1");
    req.set(http::field::range, value);
    const response_plan plan = handler_->handle(req);
    EXPECT_EQ(transfer(plan).head.result(), http::status::ok) << value;
    EXPECT_EQ(transfer(plan).length, 1000U) << value;
  }
  auto req = request("/cache/file/blob/1");
  req.insert(http::field::range, "bytes=0-1");
  req.insert(http::field::range, "bytes=5-6");  // two Range fields are two ranges
  EXPECT_EQ(transfer(handler_->handle(req)).head.result(), http::status::ok);
}

TEST_F(relay_handler, unsatisfiable_range_gives_416_without_a_slot) {
  auto req = request("/cache/file/blob/1");
  req.set(http::field::range, "bytes=1000-");
  const response_plan plan = handler_->handle(req);
  const small_response& res = small(plan);
  EXPECT_EQ(res.result(), http::status::range_not_satisfiable);
  EXPECT_EQ(res[http::field::content_range], "bytes */1000");
  EXPECT_EQ(res[http::field::content_length], "0");
  EXPECT_EQ(slots_.active(), 0U);
}

TEST_F(relay_handler, if_none_match_gives_304) {
  for (const std::string& value :
       {etag_, "W/" + etag_, std::string("*"), "\"nope\", " + etag_, " W/\"x\" ,W/" + etag_}) {
    auto req = request("/cache/file/blob/1");
    req.set(http::field::if_none_match, value);
    const response_plan plan = handler_->handle(req);
    const small_response& res = small(plan);
    EXPECT_EQ(res.result(), http::status::not_modified) << value;
    EXPECT_EQ(res[http::field::etag], etag_);
    EXPECT_TRUE(res.body().empty());
    EXPECT_EQ(slots_.active(), 0U);
  }
  auto head = request("/cache/file/blob/1", http::verb::head);
  head.set(http::field::if_none_match, etag_);
  EXPECT_EQ(small(handler_->handle(head)).result(), http::status::not_modified);

  auto split = request("/cache/file/blob/1");
  split.insert(http::field::if_none_match, "\"other\"");
  split.insert(http::field::if_none_match, etag_);
  EXPECT_EQ(small(handler_->handle(split)).result(), http::status::not_modified);

  auto stale = request("/cache/file/blob/1");
  stale.set(http::field::if_none_match, "\"" + std::string(64, '0') + "\"");
  EXPECT_EQ(transfer(handler_->handle(stale)).head.result(), http::status::ok);
}

TEST_F(relay_handler, if_none_match_wins_over_range) {
  auto req = request("/cache/file/blob/1");
  req.set(http::field::if_none_match, etag_);
  req.set(http::field::range, "bytes=5000-");
  EXPECT_EQ(small(handler_->handle(req)).result(), http::status::not_modified);
}

TEST_F(relay_handler, if_range_applies_the_range_only_when_it_matches) {
  auto req = request("/cache/file/blob/1");
  req.set(http::field::range, "bytes=0-9");
  req.set(http::field::if_range, etag_);
  EXPECT_EQ(transfer(handler_->handle(req)).head.result(), http::status::partial_content);

  for (const std::string& value : {"\"" + std::string(64, '0') + "\"", "W/" + etag_,
                                  std::string("Wed, 21 Oct 2015 07:28:00 GMT")}) {
    req.set(http::field::if_range, value);
    const response_plan plan = handler_->handle(req);
    EXPECT_EQ(transfer(plan).head.result(), http::status::ok) << value;
    EXPECT_EQ(transfer(plan).length, 1000U) << value;
  }
  // A failed If-Range also turns an unsatisfiable range into the whole item.
  req.set(http::field::range, "bytes=5000-");
  EXPECT_EQ(transfer(handler_->handle(req)).head.result(), http::status::ok);
}

TEST_F(relay_handler, if_match_mismatch_gives_412) {
  auto req = request("/cache/file/blob/1");
  req.set(http::field::if_match, "\"" + std::string(64, '0') + "\"");
  EXPECT_EQ(small(handler_->handle(req)).result(), http::status::precondition_failed);
  req.set(http::field::if_match, etag_);
  EXPECT_EQ(transfer(handler_->handle(req)).head.result(), http::status::ok);
}

TEST_F(relay_handler, full_pool_gives_503_and_a_freed_slot_is_reused) {
  auto get = request("/cache/file/blob/1");
  response_plan first = handler_->handle(get);
  response_plan second = handler_->handle(get);
  ASSERT_TRUE(std::holds_alternative<file_transfer>(first));
  ASSERT_TRUE(std::holds_alternative<file_transfer>(second));
  EXPECT_EQ(slots_.active(), 2U);

  const response_plan busy = handler_->handle(get);
  const small_response& res = small(busy);
  EXPECT_EQ(res.result(), http::status::service_unavailable);
  EXPECT_EQ(res[http::field::retry_after], "7");
  EXPECT_FALSE(res.keep_alive());
  EXPECT_EQ(slots_.refused(), 1U);

  // What takes no slot still works while the pool is full.
  EXPECT_EQ(small(handler_->handle(request("/cache/file/blob/1", http::verb::head))).result(),
            http::status::ok);
  auto conditional = request("/cache/file/blob/1");
  conditional.set(http::field::if_none_match, etag_);
  EXPECT_EQ(small(handler_->handle(conditional)).result(), http::status::not_modified);
  auto beyond = request("/cache/file/blob/1");
  beyond.set(http::field::range, "bytes=2000-");
  EXPECT_EQ(small(handler_->handle(beyond)).result(), http::status::range_not_satisfiable);
  EXPECT_EQ(small(handler_->handle(request("/-/healthz"))).result(), http::status::ok);
  EXPECT_EQ(small(handler_->handle(request("/cache/file/missing/1"))).result(),
            http::status::not_found);

  std::get<file_transfer>(first).slot.release();
  EXPECT_EQ(slots_.active(), 1U);
  const response_plan again = handler_->handle(get);
  EXPECT_TRUE(std::holds_alternative<file_transfer>(again));
  EXPECT_EQ(slots_.peak(), 2U);
  EXPECT_EQ(slots_.refused(), 1U);
}

TEST_F(relay_handler, errors_and_methods) {
  EXPECT_EQ(small(handler_->handle(request("/cache/file/missing/1"))).result(),
            http::status::not_found);
  EXPECT_EQ(small(handler_->handle(request("/cache/file/../../etc/passwd"))).result(),
            http::status::bad_request);
  EXPECT_EQ(small(handler_->handle(request("/cache/file/%2e%2e/1"))).result(),
            http::status::bad_request);
  EXPECT_EQ(small(handler_->handle(request("/nothing"))).result(), http::status::not_found);
  EXPECT_EQ(small(handler_->handle(request("http://x/cache/file/blob/1"))).result(),
            http::status::bad_request);

  for (const auto method : {http::verb::post, http::verb::put, http::verb::delete_,
                            http::verb::options, http::verb::trace}) {
    for (const char* target : {"/cache/file/blob/1", "/-/healthz"}) {
      const response_plan plan = handler_->handle(request(target, method));
      EXPECT_EQ(small(plan).result(), http::status::method_not_allowed);
      EXPECT_EQ(small(plan)[http::field::allow], "GET, HEAD");
    }
  }
  EXPECT_EQ(slots_.active(), 0U);
  EXPECT_EQ(slots_.peak(), 0U);
}

TEST_F(relay_handler, keep_alive_follows_the_request) {
  auto close = request("/cache/file/blob/1");
  close.set(http::field::connection, "close");
  EXPECT_FALSE(transfer(handler_->handle(close)).head.keep_alive());

  const auto http10 = request("/-/healthz", http::verb::get, 10);
  EXPECT_FALSE(small(handler_->handle(http10)).keep_alive());

  auto http10_keep = request("/-/healthz", http::verb::get, 10);
  http10_keep.set(http::field::connection, "Keep-Alive");
  EXPECT_TRUE(small(handler_->handle(http10_keep)).keep_alive());

  EXPECT_TRUE(small(handler_->handle(request("/cache/file/missing/1"))).keep_alive());
}

TEST_F(relay_handler, healthz) {
  const response_plan plan = handler_->handle(request("/-/healthz"));
  EXPECT_EQ(small(plan).result(), http::status::ok);
  EXPECT_EQ(small(plan).body(), "ok");
  handler_->set_draining();
  EXPECT_EQ(small(handler_->handle(request("/-/healthz"))).result(),
            http::status::service_unavailable);
}

TEST_F(relay_handler, catalog_lists_items_with_their_urls) {
  const response_plan plan = handler_->handle(request("/-/catalog"));
  EXPECT_EQ(small(plan)[http::field::content_type], "application/json");
  const auto json = boost::json::parse(small(plan).body());
  const auto& items = json.at("items").as_array();
  ASSERT_EQ(items.size(), 3U);
  bool found = false;
  for (const auto& value : items) {
    const auto& o = value.as_object();
    if (o.at("name") == "blob") {
      found = true;
      EXPECT_EQ(o.at("kind"), "file");
      EXPECT_EQ(o.at("version"), "1");
      EXPECT_EQ(o.at("size").to_number<std::uint64_t>(), 1000U);
      EXPECT_EQ(o.at("sha256").as_string(), to_hex(blob_.sha256));
      EXPECT_EQ(o.at("url"), "/cache/file/blob/1");
    }
    if (o.at("name") == "vsapi") {
      EXPECT_EQ(o.at("url"), "/cache/pattern/vsapi/1667900");
    }
  }
  EXPECT_TRUE(found);

  const response_plan head = handler_->handle(request("/-/catalog", http::verb::head));
  EXPECT_TRUE(small(head).body().empty());
  EXPECT_EQ(small(head)[http::field::content_length],
            std::to_string(small(plan).body().size()));
}

TEST_F(relay_handler, stats_report_peak_and_refusals) {
  {
    const response_plan a = handler_->handle(request("/cache/file/blob/1"));
    const response_plan b = handler_->handle(request("/cache/file/blob/1"));
    const response_plan c = handler_->handle(request("/cache/file/blob/1"));
    EXPECT_EQ(small(c).result(), http::status::service_unavailable);
  }
  // Monitoring answers loopback (and [admin] read_networks) only.
  const response_plan plan =
      handler_->handle(request("/-/stats"), {boost::asio::ip::make_address("127.0.0.1"), {}});
  const auto json = boost::json::parse(small(plan).body()).as_object();
  EXPECT_EQ(json.at("active_transfers").to_number<int>(), 0);
  EXPECT_EQ(json.at("peak_active_transfers").to_number<int>(), 2);
  EXPECT_EQ(json.at("refused_busy").to_number<int>(), 1);
  EXPECT_EQ(json.at("max_peers").to_number<int>(), 2);
  EXPECT_EQ(json.at("requests").to_number<int>(), 4);
}

TEST_F(relay_handler, piece_list_of_a_stored_item) {
  const response_plan plan = handler_->handle(request("/-/pieces/" + to_hex(blob_.sha256)));
  ASSERT_EQ(small(plan).result(), http::status::ok);
  EXPECT_EQ(small(plan)[http::field::content_type], "application/octet-stream");
  const auto parsed = parse_piece_list(std::as_bytes(std::span(small(plan).body())));
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->item_size, 1000u);
  ASSERT_EQ(parsed->pieces.size(), 1u);
  EXPECT_EQ(parsed->pieces[0], blob_.sha256);  // one piece: the whole item

  // Upper-case hex names the same content; HEAD has the length and no body; no slot is taken.
  std::string upper = to_hex(blob_.sha256);
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  const response_plan head = handler_->handle(request("/-/pieces/" + upper, http::verb::head));
  EXPECT_EQ(small(head).result(), http::status::ok);
  EXPECT_TRUE(small(head).body().empty());
  EXPECT_EQ(small(head)[http::field::content_length], std::to_string(small(plan).body().size()));

  sha256_digest absent{};
  EXPECT_EQ(small(handler_->handle(request("/-/pieces/" + to_hex(absent)))).result(),
            http::status::not_found);
  EXPECT_EQ(small(handler_->handle(request("/-/pieces/1234"))).result(), http::status::bad_request);
  EXPECT_EQ(small(handler_->handle(request("/-/pieces/" + std::string(64, 'g')))).result(),
            http::status::bad_request);
}

TEST_F(relay_handler, a_corrupted_object_gets_no_piece_list) {
  const auto object = dir_ / "cache" / "objects" / to_hex(blob_.sha256);
  {
    std::FILE* f = std::fopen(object.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fputs("XX", f);
    std::fclose(f);
  }
  EXPECT_EQ(small(handler_->handle(request("/-/pieces/" + to_hex(blob_.sha256)))).result(),
            http::status::not_found);
}

TEST_F(relay_handler, signed_catalog_names_each_items_piece_list) {
  const catalog_signer signer(site_key::generate().value(), "relay-test", std::chrono::hours(1));
  handler_settings settings{std::chrono::seconds(7)};
  settings.signer = &signer;
  request_handler handler(*store_, slots_, counters_, settings);
  const response_plan plan = handler.handle(request("/-/catalog.signed"));
  ASSERT_EQ(small(plan).result(), http::status::ok);
  const auto verified =
      verify_catalog(small(plan).body(), signer.public_key(), std::chrono::system_clock::now());
  ASSERT_TRUE(verified) << verified.error().message();
  const auto blob = find_entry(*verified, item_kind::file, "blob", "1");
  ASSERT_TRUE(blob && blob->pieces);
  const response_plan pieces = handler.handle(request("/-/pieces/" + to_hex(blob_.sha256)));
  EXPECT_EQ(*blob->pieces, sha256_of(std::as_bytes(std::span(small(pieces).body()))));
  const auto empty = find_entry(*verified, item_kind::file, "empty", "1");
  ASSERT_TRUE(empty && empty->pieces);
  EXPECT_EQ(*empty->pieces, piece_list_digest(piece_list{0, default_piece_size, {}}));
}

// /activeupdate/: only what the published index names is served; a listed file the tree lacks is
// pulled through only when the source admits it, and the pull's outcome decides the answer.
TEST_F(relay_handler, mirror_files_answer_by_index_filter_and_pull_outcome) {
  const auto tree = dir_ / "mirror" / "vendor" / "tree";
  fs::create_directories(tree / "pattern");
  std::ofstream(tree / "pattern" / "stray.bin") << "left by a failed sync";
  std::ofstream(tree / "server.ini") << "[PATTERN]\r\nPath_A=pattern/a.bin,5\r\nPath_B=pattern/b.bin,5\r\n";
  std::ofstream(dir_ / "mirror" / "vendor" / "state.json")
      << R"({"format":1,"generation":1,"last_attempt":)"
      << std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch()).count()
      << R"(,"last_success":)"
      << std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch()).count()
      << "}";
  relay_config config;
  config.state_dir = dir_;
  mirror_source_settings source;
  source.name = "vendor";
  source.url = "http://127.0.0.1:9/activeupdate/";  // never reached: the first sync waits 1h
  source.include = {"ENGINE"};
  source.pull_through = {"PATTERN:B"};
  config.mirror.sources.push_back(source);
  boost::asio::io_context ioc;
  mirror_service mirrors(ioc, config, "http://relay:4127");
  mirrors.start();
  for (int i = 0; i < 200 && mirrors.lookup("vendor", "pattern/b.bin").verdict !=
                                 mirror_lookup_verdict::pullable; ++i) {
    ioc.run_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(mirrors.lookup("vendor", "pattern/b.bin").verdict, mirror_lookup_verdict::pullable);
  request_handler h(*store_, slots_, counters_,
                    handler_settings{std::chrono::seconds(7), nullptr, {}, nullptr, &mirrors});

  const auto stray_plan = h.handle(request("/activeupdate/vendor/pattern/stray.bin"));
  const auto& stray = small(stray_plan);
  EXPECT_EQ(stray.result(), http::status::not_found);
  EXPECT_EQ(stray.body(), "not in the mirrored index\n");
  // The index asks HTTP caches between two levels of relays to revalidate it every time (it
  // changes under the same URL); cached items and listed files do not.
  const auto index_plan = h.handle(request("/activeupdate/vendor/server.ini", http::verb::head));
  ASSERT_EQ(small(index_plan).result(), http::status::ok);
  EXPECT_EQ(small(index_plan)[http::field::cache_control], "no-cache");
  auto revalidate = request("/activeupdate/vendor/server.ini");
  revalidate.set(http::field::if_none_match, small(index_plan)[http::field::etag]);
  const auto unchanged_plan = h.handle(revalidate);
  ASSERT_EQ(small(unchanged_plan).result(), http::status::not_modified);
  EXPECT_EQ(small(unchanged_plan)[http::field::cache_control], "no-cache");
  EXPECT_TRUE(small(handler_->handle(request("/cache/file/blob/1", http::verb::head)))[http::field::cache_control].empty());
  const auto left_out_plan = h.handle(request("/activeupdate/vendor/pattern/a.bin"));
  const auto& left_out = small(left_out_plan);
  EXPECT_EQ(left_out.result(), http::status::not_found);
  EXPECT_NE(left_out.body().find("pull_through"), std::string::npos);

  // A listed, admitted file the tree lacks: an awaited response that pulls it through (the
  // upstream refuses the connection) and decides again with the outcome, counted as one request.
  const auto requests_before = counters_.requests.load();
  auto plan = h.handle(request("/activeupdate/vendor/pattern/b.bin"));
  ASSERT_TRUE(std::holds_alternative<awaited_response>(plan));
  EXPECT_TRUE(std::get<awaited_response>(plan).abandon_when_client_leaves);
  std::optional<ready_plan> pulled;
  boost::asio::co_spawn(ioc, std::get<awaited_response>(plan).produce(),
                        [&](std::exception_ptr e, ready_plan ready) {
                          ASSERT_FALSE(e);
                          pulled.emplace(std::move(ready));
                        });
  for (int i = 0; i < 3000 && !pulled; ++i) {
    ioc.run_one_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(pulled);
  ASSERT_TRUE(std::holds_alternative<small_response>(*pulled));
  EXPECT_EQ(std::get<small_response>(*pulled).result(), http::status::service_unavailable);
  EXPECT_FALSE(std::get<small_response>(*pulled)[http::field::retry_after].empty());
  EXPECT_EQ(counters_.requests.load(), requests_before + 1);

  request_context busy;
  busy.pull = pull_outcome{pull_verdict::busy, "mirror.max_pulls (4) pull-throughs are running", {}};
  const auto later_plan = h.handle(request("/activeupdate/vendor/pattern/b.bin"), busy);
  const auto& later = small(later_plan);
  EXPECT_EQ(later.result(), http::status::service_unavailable);
  EXPECT_EQ(later[http::field::retry_after], "7");
  EXPECT_EQ(later.body(), "mirror.max_pulls (4) pull-throughs are running\n");
  busy.pull->retry_after = std::chrono::seconds(1800);
  const auto longer_plan = h.handle(request("/activeupdate/vendor/pattern/b.bin"), busy);
  EXPECT_EQ(small(longer_plan)[http::field::retry_after], "1800");

  request_context refused;
  refused.pull = pull_outcome{pull_verdict::refused, "larger than mirror.pull_volume", {}};
  const auto never_plan = h.handle(request("/activeupdate/vendor/pattern/b.bin"), refused);
  const auto& never = small(never_plan);
  EXPECT_EQ(never.result(), http::status::not_found);
  EXPECT_EQ(never.body(), "larger than mirror.pull_volume\n");

  // "Update now" is an awaited response too, run to its end whatever the client does; the access
  // policy's mirror_sync rule decides before it: the token, over HTTPS or from loopback.
  auto policy = access_policy::from_config(admin_settings{"sync-token", {"10.0.0.0/8"}});
  ASSERT_TRUE(policy);
  request_handler admin(*store_, slots_, counters_,
                        handler_settings{std::chrono::seconds(7), nullptr, *policy, nullptr,
                                         &mirrors});
  auto sync = request("/-/mirror/sync/vendor");
  sync.method(http::verb::post);
  sync.set(http::field::authorization, "Bearer sync-token");
  request_context lan_clear{boost::asio::ip::make_address("10.1.2.3"), {}};
  EXPECT_EQ(small(admin.handle(sync, lan_clear)).result(), http::status::forbidden);
  request_context lan_tls = lan_clear;
  lan_tls.secure = true;
  const auto sync_plan = admin.handle(sync, lan_tls);
  ASSERT_TRUE(std::holds_alternative<awaited_response>(sync_plan));
  EXPECT_FALSE(std::get<awaited_response>(sync_plan).abandon_when_client_leaves);
  auto unknown = request("/-/mirror/sync/nobody");
  unknown.method(http::verb::post);
  unknown.set(http::field::authorization, "Bearer sync-token");
  EXPECT_EQ(small(admin.handle(unknown, lan_tls)).result(), http::status::not_found);
  mirrors.stop();
  ioc.run_for(std::chrono::milliseconds(50));
}

// --- a peer still downloading: pieces by Range, the rest refused ----------------------------

class relay_handler_partial : public relay_handler {
 protected:
  void SetUp() override {
    relay_handler::SetUp();
    list_.item_size = 2 * min_piece_size + 100;
    list_.piece_size = min_piece_size;
    list_.pieces.resize(3);
    sha_[0] = std::byte{0x42};
    auto writer = partial_item_writer::create(dir_ / "cache", key_, sha_, list_);
    ASSERT_TRUE(writer) << writer.error().message();
    writer_ = std::move(*writer);
    ASSERT_TRUE(writer_->write_piece(1, std::vector<std::byte>(min_piece_size, std::byte{'p'})));
  }
  void TearDown() override {
    writer_.reset();
    relay_handler::TearDown();
  }

  http::request_header<> range_request(std::uint64_t first, std::uint64_t last) {
    auto h = request("/cache/file/growing/2");
    h.set(http::field::range, "bytes=" + std::to_string(first) + "-" + std::to_string(last));
    return h;
  }

  item_key key_{item_kind::file, "growing", "2"};
  sha256_digest sha_{};
  piece_list list_;
  std::unique_ptr<partial_item_writer> writer_;
};

TEST_F(relay_handler_partial, a_range_within_held_pieces_is_served_at_once) {
  const response_plan plan = handler_->handle(range_request(min_piece_size, 2 * min_piece_size - 1));
  const file_transfer& t = transfer(plan);
  EXPECT_EQ(t.head.result(), http::status::partial_content);
  EXPECT_EQ(t.head[http::field::content_range],
            "bytes " + std::to_string(min_piece_size) + "-" + std::to_string(2 * min_piece_size - 1) +
                "/" + std::to_string(list_.item_size));
  EXPECT_EQ(t.length, min_piece_size);
  EXPECT_TRUE(t.slot.held());  // the peer cap and the fair share hold as for any transfer
  EXPECT_EQ(read_range(t), std::string(min_piece_size, 'p'));
}

TEST_F(relay_handler_partial, a_range_on_a_piece_not_held_is_refused_clearly) {
  for (const auto& [first, last] : {std::pair<std::uint64_t, std::uint64_t>{0, 99},
                                   {min_piece_size - 1, min_piece_size},
                                   {min_piece_size, 2 * min_piece_size}}) {
    const response_plan plan = handler_->handle(range_request(first, last));
    const auto& res = small(plan);
    EXPECT_EQ(res.result(), http::status::range_not_satisfiable) << first << "-" << last;
    EXPECT_EQ(res[http::field::content_range], "bytes */" + std::to_string(list_.item_size));
    EXPECT_NE(res.body().find("1 of 3 pieces"), std::string::npos) << res.body();
  }
  // Without a Range, the whole item is not here yet.
  EXPECT_EQ(small(handler_->handle(request("/cache/file/growing/2"))).result(),
            http::status::not_found);
  EXPECT_EQ(slots_.active(), 0U);
}

TEST_F(relay_handler_partial, have_and_pieces_say_what_the_peer_holds) {
  const response_plan have_plan = handler_->handle(request("/-/have/" + to_hex(sha_)));
  const auto& have = small(have_plan);
  EXPECT_EQ(have.result(), http::status::ok);
  ASSERT_EQ(have.body().size(), 1u);
  EXPECT_EQ(static_cast<unsigned char>(have.body()[0]), 0x40u);  // piece 1 of 3
  const response_plan pieces_plan = handler_->handle(request("/-/pieces/" + to_hex(sha_)));
  const auto& pieces = small(pieces_plan);
  EXPECT_EQ(pieces.result(), http::status::ok);
  const auto encoded = encode(list_);
  EXPECT_EQ(pieces.body(), std::string(reinterpret_cast<const char*>(encoded.data()), encoded.size()));
  // A stored item: every piece.
  const response_plan full_plan = handler_->handle(request("/-/have/" + to_hex(blob_.sha256)));
  const auto& full = small(full_plan);
  EXPECT_EQ(full.result(), http::status::ok);
  EXPECT_EQ(full.body(), std::string(1, static_cast<char>(0x80)));
  sha256_digest absent{};
  EXPECT_EQ(small(handler_->handle(request("/-/have/" + to_hex(absent)))).result(),
            http::status::not_found);
  // The writer is gone (its item complete, or it died): nothing partial is served any more.
  writer_.reset();
  EXPECT_EQ(small(handler_->handle(request("/-/have/" + to_hex(sha_)))).result(),
            http::status::not_found);
  EXPECT_EQ(small(handler_->handle(range_request(min_piece_size, min_piece_size + 9))).result(),
            http::status::not_found);
}

}  // namespace
}  // namespace lanrelay::relay
