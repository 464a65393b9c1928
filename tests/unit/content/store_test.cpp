#include "lanrelay/content/store.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace lanrelay {
namespace {

namespace fs = std::filesystem;

std::span<const std::byte> bytes_of(std::string_view text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

sha256_digest digest_of(std::string_view text) { return sha256_of(bytes_of(text)); }

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_text(const fs::path& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

std::string read_fd(int fd) {
  std::string out;
  char buffer[4096];
  off_t offset = 0;
  while (true) {
    const ssize_t n = ::pread(fd, buffer, sizeof buffer, offset);
    if (n <= 0) {
      return out;
    }
    out.append(buffer, static_cast<std::size_t>(n));
    offset += n;
  }
}

std::size_t entries_in(const fs::path& dir) {
  return static_cast<std::size_t>(
      std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

item_key installer(std::string name, std::string version) {
  return {item_kind::installer, std::move(name), std::move(version)};
}
item_key pattern(std::string name, std::string version) {
  return {item_kind::pattern, std::move(name), std::move(version)};
}
item_key file(std::string name, std::string version) {
  return {item_kind::file, std::move(name), std::move(version)};
}

class store_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-store-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    dir_ = root_ / "cache";
    fs::create_directories(root_ / "src");
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<content_store> open_store(std::uint64_t max_size = 0) {
    auto store = content_store::open({dir_, max_size});
    EXPECT_TRUE(store) << (store ? "" : store.error().message());
    return store ? std::move(*store) : nullptr;
  }

  fs::path source(std::string_view content) {
    const fs::path path = root_ / "src" / ("s" + std::to_string(next_source_++));
    write_text(path, content);
    return path;
  }

  // Thread safe: every (id, i) names its own file.
  fs::path source_for(int id, int i, std::string_view content) {
    const fs::path path = root_ / "src" / ("c" + std::to_string(id) + "-" + std::to_string(i));
    write_text(path, content);
    return path;
  }

  result<item> add(content_store& store, const item_key& key, std::string_view content,
                   bool pin = false) {
    return store.add_file(source(content), key, std::nullopt, pin);
  }

  std::string content_of(content_store& store, const item_key& key) {
    auto opened = store.open_item(key);
    EXPECT_TRUE(opened) << key.name;
    return opened ? read_fd(opened->fd()) : std::string();
  }

  fs::path object(std::string_view content) const {
    return dir_ / "objects" / to_hex(digest_of(content));
  }

  fs::path root_;
  fs::path dir_;
  int next_source_ = 0;
};

TEST_F(store_test, open_creates_the_layout) {
  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_TRUE(fs::is_directory(dir_ / "objects"));
  EXPECT_TRUE(fs::is_directory(dir_ / "tmp"));
  EXPECT_TRUE(fs::is_regular_file(dir_ / "lock"));
  EXPECT_TRUE(fs::is_regular_file(dir_ / "index.json"));
  EXPECT_NE(read_text(dir_ / "index.json").find("\"version\":1"), std::string::npos);
  EXPECT_TRUE(store->list().empty());
  EXPECT_EQ(store->total_size(), 0u);
  EXPECT_EQ(store->dir(), dir_);
}

TEST_F(store_test, open_without_a_directory_is_a_config_error) {
  const auto store = content_store::open({});
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error(), errc::invalid_config);
}

TEST_F(store_test, add_then_find_and_read) {
  auto store = open_store();
  const auto before = std::chrono::system_clock::now() - std::chrono::seconds(1);
  const auto added = add(*store, installer("agent-x64", "14.0.1234"), "installer bytes");
  ASSERT_TRUE(added) << added.error().message();
  EXPECT_EQ(added->key, installer("agent-x64", "14.0.1234"));
  EXPECT_EQ(added->size, 15u);
  EXPECT_EQ(added->sha256, digest_of("installer bytes"));
  EXPECT_FALSE(added->pinned);
  EXPECT_GE(added->added_at, before);
  EXPECT_LE(added->added_at, std::chrono::system_clock::now());
  EXPECT_EQ(added->last_used, added->added_at);

  const auto found = store->find(installer("agent-x64", "14.0.1234"));
  ASSERT_TRUE(found);
  EXPECT_EQ(found->sha256, added->sha256);
  EXPECT_EQ(content_of(*store, installer("agent-x64", "14.0.1234")), "installer bytes");
  EXPECT_TRUE(fs::is_regular_file(object("installer bytes")));
  EXPECT_EQ(entries_in(dir_ / "tmp"), 0u);
  EXPECT_EQ(store->total_size(), 15u);

  EXPECT_FALSE(store->find(installer("agent-x64", "14.0.1235")));
  EXPECT_FALSE(store->find(file("agent-x64", "14.0.1234")));
  const auto missing = store->open_item(installer("agent-x64", "14.0"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), errc::not_found);
}

TEST_F(store_test, empty_item) {
  auto store = open_store();
  const auto added = add(*store, file("marker", "1"), "");
  ASSERT_TRUE(added);
  EXPECT_EQ(added->size, 0u);
  EXPECT_EQ(content_of(*store, file("marker", "1")), "");
}

TEST_F(store_test, pattern_versions_are_canonical_integers) {
  auto store = open_store();
  const auto added = add(*store, pattern("icrc-ioth", "16.679.00"), "pattern");
  ASSERT_TRUE(added);
  EXPECT_EQ(added->key.version, "1667900");
  EXPECT_TRUE(store->find(pattern("icrc-ioth", "1667900")));
  EXPECT_TRUE(store->find(pattern("icrc-ioth", "16.679.00")));
  EXPECT_EQ(content_of(*store, pattern("icrc-ioth", "16.679.00")), "pattern");
  EXPECT_NE(read_text(dir_ / "index.json").find("\"version\":\"1667900\""), std::string::npos);
}

TEST_F(store_test, index_json_records_every_field) {
  auto store = open_store();
  ASSERT_TRUE(add(*store, file("notes", "v1"), "abc", true));
  const std::string index = read_text(dir_ / "index.json");
  for (const char* expected :
       {"\"kind\":\"file\"", "\"name\":\"notes\"", "\"version\":\"v1\"", "\"size\":3",
        "\"sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"",
        "\"pinned\":true", "\"added_at\":", "\"last_used\":"}) {
    EXPECT_NE(index.find(expected), std::string::npos) << expected << " in " << index;
  }
  EXPECT_FALSE(fs::exists(dir_ / "index.json.tmp"));
}

TEST_F(store_test, list_is_sorted_by_kind_name_and_version) {
  auto store = open_store();
  ASSERT_TRUE(add(*store, file("b", "x"), "1"));
  ASSERT_TRUE(add(*store, installer("a", "14.1"), "2"));
  ASSERT_TRUE(add(*store, installer("a", "9.0"), "3"));
  ASSERT_TRUE(add(*store, pattern("p", "1667900"), "4"));
  const auto items = store->list();
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[0].key, installer("a", "9.0"));
  EXPECT_EQ(items[1].key, installer("a", "14.1"));
  EXPECT_EQ(items[2].key, pattern("p", "1667900"));
  EXPECT_EQ(items[3].key, file("b", "x"));
}

TEST_F(store_test, find_satisfying_returns_newest_first) {
  auto store = open_store();
  ASSERT_TRUE(add(*store, installer("agent", "14.0.1000"), "a"));
  ASSERT_TRUE(add(*store, installer("agent", "14.1.5"), "b"));
  ASSERT_TRUE(add(*store, installer("agent", "13.9.9999"), "c"));
  ASSERT_TRUE(add(*store, installer("other", "15.0"), "d"));
  ASSERT_TRUE(add(*store, pattern("ioth", "1667700"), "e"));
  ASSERT_TRUE(add(*store, pattern("ioth", "1667900"), "f"));

  const auto agents = store->find_satisfying(item_kind::installer, "agent", "14.0.2000");
  ASSERT_EQ(agents.size(), 2u);
  EXPECT_EQ(agents[0].key.version, "14.1.5");
  EXPECT_EQ(agents[1].key.version, "14.0.1000");

  EXPECT_TRUE(store->find_satisfying(item_kind::installer, "agent", "14.2").empty());
  EXPECT_TRUE(store->find_satisfying(item_kind::installer, "agent", "garbage").empty());
  EXPECT_TRUE(store->find_satisfying(item_kind::file, "agent", "14.0").empty());

  // Patterns: only the exact version, in either spelling.
  const auto patterns = store->find_satisfying(item_kind::pattern, "ioth", "16.677.00");
  ASSERT_EQ(patterns.size(), 1u);
  EXPECT_EQ(patterns[0].key.version, "1667700");
  EXPECT_TRUE(store->find_satisfying(item_kind::pattern, "ioth", "1667800").empty());
}

TEST_F(store_test, remove_deletes_the_item_and_its_object) {
  auto store = open_store();
  ASSERT_TRUE(add(*store, file("f", "1"), "content"));
  ASSERT_TRUE(store->remove(file("f", "1")));
  EXPECT_FALSE(store->find(file("f", "1")));
  EXPECT_FALSE(fs::exists(object("content")));
  EXPECT_EQ(store->total_size(), 0u);
  const auto again = store->remove(file("f", "1"));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), errc::not_found);
}

TEST_F(store_test, shared_content_is_stored_once_and_kept_while_referenced) {
  auto store = open_store();
  ASSERT_TRUE(add(*store, file("one", "1"), "same"));
  ASSERT_TRUE(add(*store, file("two", "1"), "same"));
  EXPECT_EQ(entries_in(dir_ / "objects"), 1u);
  EXPECT_EQ(store->total_size(), 4u);
  ASSERT_TRUE(store->remove(file("one", "1")));
  EXPECT_TRUE(fs::exists(object("same")));
  EXPECT_EQ(content_of(*store, file("two", "1")), "same");
  ASSERT_TRUE(store->remove(file("two", "1")));
  EXPECT_FALSE(fs::exists(object("same")));
}

TEST_F(store_test, an_open_item_stays_readable_after_removal) {
  auto store = open_store();
  ASSERT_TRUE(add(*store, file("f", "1"), "still here"));
  auto opened = store->open_item(file("f", "1"));
  ASSERT_TRUE(opened);
  ASSERT_TRUE(store->remove(file("f", "1")));
  EXPECT_EQ(read_fd(opened->fd()), "still here");
}

TEST_F(store_test, pin_and_unpin) {
  auto store = open_store();
  ASSERT_TRUE(add(*store, file("f", "1"), "x"));
  ASSERT_TRUE(store->set_pinned(file("f", "1"), true));
  EXPECT_TRUE(store->find(file("f", "1"))->pinned);
  EXPECT_NE(read_text(dir_ / "index.json").find("\"pinned\":true"), std::string::npos);
  ASSERT_TRUE(store->set_pinned(file("f", "1"), false));
  EXPECT_FALSE(store->find(file("f", "1"))->pinned);
  const auto missing = store->set_pinned(file("g", "1"), true);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), errc::not_found);
}

TEST_F(store_test, adding_the_same_content_again_is_a_no_op) {
  auto store = open_store();
  const auto first = add(*store, file("f", "1"), "same");
  ASSERT_TRUE(first);
  const std::string index = read_text(dir_ / "index.json");
  const auto second = add(*store, file("f", "1"), "same");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->sha256, first->sha256);
  EXPECT_EQ(second->added_at, first->added_at);
  EXPECT_EQ(store->list().size(), 1u);
  EXPECT_EQ(read_text(dir_ / "index.json"), index);
  EXPECT_EQ(entries_in(dir_ / "tmp"), 0u);
  EXPECT_EQ(entries_in(dir_ / "objects"), 1u);

  const auto pinned = add(*store, file("f", "1"), "same", true);
  ASSERT_TRUE(pinned);
  EXPECT_TRUE(pinned->pinned);
  EXPECT_TRUE(store->find(file("f", "1"))->pinned);
}

TEST_F(store_test, adding_other_content_replaces_the_item) {
  auto store = open_store();
  ASSERT_TRUE(add(*store, file("f", "1"), "old content"));
  ASSERT_TRUE(store->set_pinned(file("f", "1"), true));
  const auto replaced = add(*store, file("f", "1"), "new");
  ASSERT_TRUE(replaced);
  EXPECT_EQ(replaced->sha256, digest_of("new"));
  EXPECT_TRUE(replaced->pinned);
  EXPECT_EQ(store->list().size(), 1u);
  EXPECT_EQ(content_of(*store, file("f", "1")), "new");
  EXPECT_FALSE(fs::exists(object("old content")));
  EXPECT_TRUE(fs::exists(object("new")));
  EXPECT_EQ(store->total_size(), 3u);
}

TEST_F(store_test, invalid_keys_write_nothing) {
  auto store = open_store();
  const std::string index = read_text(dir_ / "index.json");
  const std::pair<item_key, errc> cases[] = {
      {file("", "1"), errc::invalid_name},
      {file("../etc", "1"), errc::invalid_name},
      {file(".hidden", "1"), errc::invalid_name},
      {file("a/b", "1"), errc::invalid_name},
      {file(std::string(129, 'a'), "1"), errc::invalid_name},
      {file("ok", ""), errc::invalid_version},
      {file("ok", "a/b"), errc::invalid_version},
      {installer("ok", "14.x"), errc::invalid_version},
      {installer("ok", "-1"), errc::invalid_version},
      {pattern("ok", "16.679"), errc::invalid_version},
      {pattern("ok", "abc"), errc::invalid_version},
  };
  for (const auto& [key, expected] : cases) {
    const auto added = add(*store, key, "data");
    ASSERT_FALSE(added) << key.name << " " << key.version;
    EXPECT_EQ(added.error(), expected) << key.name << " " << key.version;
    const auto writer = store->begin_add(key);
    ASSERT_FALSE(writer);
    EXPECT_EQ(writer.error(), expected);
    EXPECT_EQ(store->remove(key).error(), expected);
    EXPECT_EQ(store->set_pinned(key, true).error(), expected);
    EXPECT_EQ(store->open_item(key).error(), expected);
    EXPECT_FALSE(store->find(key));
  }
  EXPECT_EQ(read_text(dir_ / "index.json"), index);
  EXPECT_EQ(entries_in(dir_ / "tmp"), 0u);
  EXPECT_EQ(entries_in(dir_ / "objects"), 0u);
}

TEST_F(store_test, add_file_reports_a_missing_source) {
  auto store = open_store();
  const auto added = store->add_file(root_ / "nope", file("f", "1"));
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error(), boost::system::errc::no_such_file_or_directory);
  EXPECT_EQ(entries_in(dir_ / "tmp"), 0u);
}

TEST_F(store_test, least_recently_used_items_are_evicted_first) {
  auto store = open_store(300);
  const std::string a(100, 'a'), b(100, 'b'), c(100, 'c'), d(100, 'd');
  ASSERT_TRUE(add(*store, file("a", "1"), a));
  ASSERT_TRUE(add(*store, file("b", "1"), b));
  ASSERT_TRUE(add(*store, file("c", "1"), c));
  ASSERT_TRUE(store->open_item(file("a", "1")));
  ASSERT_TRUE(add(*store, file("d", "1"), d));
  EXPECT_TRUE(store->find(file("a", "1")));
  EXPECT_FALSE(store->find(file("b", "1")));
  EXPECT_TRUE(store->find(file("c", "1")));
  EXPECT_TRUE(store->find(file("d", "1")));
  EXPECT_FALSE(fs::exists(object(b)));
  EXPECT_EQ(store->total_size(), 300u);
  EXPECT_EQ(store->evictions(), 1u);  // lanrelay_cache_evictions_total

  // A large item evicts as many as it needs, oldest first: c, a, then d.
  const std::string e(150, 'e');
  ASSERT_TRUE(add(*store, file("e", "1"), e));
  EXPECT_FALSE(store->find(file("c", "1")));
  EXPECT_FALSE(store->find(file("a", "1")));
  EXPECT_TRUE(store->find(file("d", "1")));
  EXPECT_EQ(store->total_size(), 250u);
  const std::string f(250, 'f');
  ASSERT_TRUE(add(*store, file("f", "1"), f));
  EXPECT_FALSE(store->find(file("d", "1")));
  EXPECT_FALSE(store->find(file("e", "1")));
  EXPECT_EQ(store->list().size(), 1u);
  EXPECT_EQ(store->total_size(), 250u);
  EXPECT_EQ(entries_in(dir_ / "objects"), 1u);
  EXPECT_EQ(content_of(*store, file("f", "1")), f);
  EXPECT_EQ(store->evictions(), 5u);  // b, c, a, d, e
}

TEST_F(store_test, use_order_survives_a_restart) {
  {
    auto store = open_store(300);
    ASSERT_TRUE(add(*store, file("a", "1"), std::string(100, 'a')));
    ASSERT_TRUE(add(*store, file("b", "1"), std::string(100, 'b')));
    ASSERT_TRUE(add(*store, file("c", "1"), std::string(100, 'c')));
    ASSERT_TRUE(store->open_item(file("a", "1")));
    ASSERT_TRUE(store->flush());
  }
  auto store = open_store(300);
  ASSERT_TRUE(add(*store, file("d", "1"), std::string(100, 'd')));
  EXPECT_TRUE(store->find(file("a", "1")));
  EXPECT_FALSE(store->find(file("b", "1")));
}

TEST_F(store_test, flush_persists_last_used) {
  auto store = open_store();
  ASSERT_TRUE(add(*store, file("a", "1"), "a"));
  const std::string before = read_text(dir_ / "index.json");
  ASSERT_TRUE(store->flush());
  EXPECT_EQ(read_text(dir_ / "index.json"), before) << "nothing to flush";
  ASSERT_TRUE(store->open_item(file("a", "1")));
  const auto used = store->find(file("a", "1"))->last_used;
  ASSERT_TRUE(store->flush());
  auto other = open_store();
  EXPECT_EQ(other->find(file("a", "1"))->last_used, used);
}

TEST_F(store_test, pinned_items_are_never_evicted) {
  auto store = open_store(300);
  ASSERT_TRUE(add(*store, file("a", "1"), std::string(100, 'a'), true));
  ASSERT_TRUE(add(*store, file("b", "1"), std::string(100, 'b')));
  ASSERT_TRUE(add(*store, file("c", "1"), std::string(100, 'c')));
  ASSERT_TRUE(add(*store, file("d", "1"), std::string(100, 'd')));
  EXPECT_TRUE(store->find(file("a", "1")));
  EXPECT_FALSE(store->find(file("b", "1")));
  EXPECT_TRUE(store->find(file("c", "1")));
  EXPECT_TRUE(store->find(file("d", "1")));
}

TEST_F(store_test, an_item_larger_than_the_limit_is_too_large) {
  auto store = open_store(100);
  ASSERT_TRUE(add(*store, file("a", "1"), std::string(60, 'a')));
  const auto added = add(*store, file("big", "1"), std::string(101, 'x'));
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error(), errc::too_large);
  EXPECT_TRUE(store->find(file("a", "1")));

  auto writer = store->begin_add(file("big", "1"));
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->write(bytes_of(std::string(100, 'x'))));
  const auto overflow = writer->write(bytes_of("y"));
  ASSERT_FALSE(overflow);
  EXPECT_EQ(overflow.error(), errc::too_large);
  EXPECT_EQ(entries_in(dir_ / "tmp"), 0u);
  EXPECT_FALSE(writer->commit(std::nullopt, std::nullopt));
  EXPECT_EQ(entries_in(dir_ / "objects"), 1u);
  EXPECT_TRUE(store->find(file("a", "1")));
}

TEST_F(store_test, pinned_items_leaving_no_room_is_store_full) {
  auto store = open_store(200);
  ASSERT_TRUE(add(*store, file("a", "1"), std::string(100, 'a'), true));
  ASSERT_TRUE(add(*store, file("b", "1"), std::string(80, 'b'), true));
  ASSERT_TRUE(add(*store, file("c", "1"), std::string(10, 'c')));
  const std::string index = read_text(dir_ / "index.json");
  const auto added = add(*store, file("d", "1"), std::string(50, 'd'));
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error(), errc::store_full);
  // Nothing was evicted for an add that could not succeed.
  EXPECT_TRUE(store->find(file("c", "1")));
  EXPECT_EQ(read_text(dir_ / "index.json"), index);
  EXPECT_EQ(entries_in(dir_ / "tmp"), 0u);
  EXPECT_EQ(entries_in(dir_ / "objects"), 3u);
  EXPECT_FALSE(fs::exists(object(std::string(50, 'd'))));
}

TEST_F(store_test, a_digest_mismatch_leaves_nothing_behind) {
  auto store = open_store();
  const std::string index = read_text(dir_ / "index.json");
  const auto added =
      store->add_file(source("payload"), file("f", "1"), digest_of("something else"));
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error(), errc::digest_mismatch);
  EXPECT_FALSE(store->find(file("f", "1")));
  EXPECT_EQ(entries_in(dir_ / "tmp"), 0u);
  EXPECT_EQ(entries_in(dir_ / "objects"), 0u);
  EXPECT_EQ(read_text(dir_ / "index.json"), index);

  const auto good = store->add_file(source("payload"), file("f", "1"), digest_of("payload"));
  ASSERT_TRUE(good);
}

TEST_F(store_test, a_digest_mismatch_keeps_the_previous_version) {
  auto store = open_store();
  ASSERT_TRUE(add(*store, file("f", "1"), "old"));
  const auto added = store->add_file(source("new"), file("f", "1"), digest_of("other"));
  ASSERT_FALSE(added);
  EXPECT_EQ(content_of(*store, file("f", "1")), "old");
}

TEST_F(store_test, writer_streams_and_verifies) {
  auto store = open_store();
  auto writer = store->begin_add(pattern("ioth", "16.679.00"));
  ASSERT_TRUE(writer);
  EXPECT_EQ(entries_in(dir_ / "tmp"), 1u);
  ASSERT_TRUE(writer->write(bytes_of("hello ")));
  ASSERT_TRUE(writer->write(bytes_of("world")));
  EXPECT_EQ(writer->bytes_written(), 11u);
  const auto committed = writer->commit(11, digest_of("hello world"), true);
  ASSERT_TRUE(committed) << committed.error().message();
  EXPECT_EQ(committed->key, pattern("ioth", "1667900"));
  EXPECT_TRUE(committed->pinned);
  EXPECT_EQ(entries_in(dir_ / "tmp"), 0u);
  EXPECT_EQ(content_of(*store, pattern("ioth", "1667900")), "hello world");
  EXPECT_FALSE(writer->commit(11, std::nullopt));
  EXPECT_FALSE(writer->write(bytes_of("more")));
}

TEST_F(store_test, writer_size_mismatch_leaves_nothing_behind) {
  auto store = open_store();
  auto writer = store->begin_add(file("f", "1"));
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->write(bytes_of("short")));
  const auto committed = writer->commit(10, std::nullopt);
  ASSERT_FALSE(committed);
  EXPECT_EQ(committed.error(), errc::size_mismatch);
  EXPECT_EQ(entries_in(dir_ / "tmp"), 0u);
  EXPECT_EQ(entries_in(dir_ / "objects"), 0u);
  EXPECT_FALSE(store->find(file("f", "1")));
}

TEST_F(store_test, an_abandoned_writer_removes_its_temporary_file) {
  auto store = open_store();
  {
    auto writer = store->begin_add(file("f", "1"));
    ASSERT_TRUE(writer);
    ASSERT_TRUE(writer->write(bytes_of("partial")));
    item_writer moved = std::move(*writer);
    EXPECT_EQ(moved.bytes_written(), 7u);
    EXPECT_EQ(entries_in(dir_ / "tmp"), 1u);
  }
  EXPECT_EQ(entries_in(dir_ / "tmp"), 0u);
  EXPECT_FALSE(store->find(file("f", "1")));
}

TEST_F(store_test, a_second_instance_sees_changes_without_reopening) {
  auto first = open_store();
  auto second = open_store();
  ASSERT_TRUE(first && second);
  EXPECT_FALSE(second->find(file("f", "1")));

  ASSERT_TRUE(add(*first, file("f", "1"), "shared"));
  ASSERT_TRUE(second->find(file("f", "1")));
  EXPECT_EQ(content_of(*second, file("f", "1")), "shared");
  EXPECT_EQ(second->list().size(), 1u);
  EXPECT_EQ(second->find_satisfying(item_kind::file, "f", "1").size(), 1u);
  EXPECT_EQ(second->total_size(), 6u);

  ASSERT_TRUE(add(*second, file("g", "1"), "from second"));
  EXPECT_EQ(first->list().size(), 2u);
  ASSERT_TRUE(first->remove(file("f", "1")));
  EXPECT_FALSE(second->find(file("f", "1")));
  const auto opened = second->open_item(file("f", "1"));
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error(), errc::not_found);
  ASSERT_TRUE(second->set_pinned(file("g", "1"), true));
  EXPECT_TRUE(first->find(file("g", "1"))->pinned);
}

TEST_F(store_test, a_writer_keeps_touches_of_another_instance) {
  auto first = open_store(300);
  auto second = open_store(300);
  ASSERT_TRUE(add(*first, file("a", "1"), std::string(100, 'a')));
  ASSERT_TRUE(add(*first, file("b", "1"), std::string(100, 'b')));
  ASSERT_TRUE(add(*first, file("c", "1"), std::string(100, 'c')));
  // The second instance uses "a" and persists it; the first then needs room.
  ASSERT_TRUE(second->open_item(file("a", "1")));
  ASSERT_TRUE(second->flush());
  ASSERT_TRUE(add(*first, file("d", "1"), std::string(100, 'd')));
  EXPECT_TRUE(first->find(file("a", "1")));
  EXPECT_FALSE(first->find(file("b", "1")));
}

TEST_F(store_test, open_leaves_a_live_writers_temporary_file_alone) {
  auto first = open_store();
  auto writer = first->begin_add(file("f", "1"));
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->write(bytes_of("in progress")));
  auto second = open_store();
  ASSERT_TRUE(second);
  EXPECT_EQ(entries_in(dir_ / "tmp"), 1u);
  ASSERT_TRUE(writer->commit(std::nullopt, std::nullopt));
  EXPECT_EQ(content_of(*second, file("f", "1")), "in progress");
}

TEST_F(store_test, open_recovers_from_an_interrupted_run) {
  {
    auto store = open_store();
    ASSERT_TRUE(add(*store, file("keep", "1"), "keep me"));
    ASSERT_TRUE(add(*store, file("cut", "1"), "this object gets truncated"));
    ASSERT_TRUE(add(*store, file("gone", "1"), "this object gets deleted"));
  }
  write_text(dir_ / "tmp" / "0123456789abcdef", "half a download");
  fs::create_directory(dir_ / "tmp" / "leftover-dir");
  write_text(dir_ / "index.json.tmp", "{\"version\":1,");
  write_text(object("orphan"), "orphan");
  write_text(dir_ / "objects" / "not-an-object", "junk");
  fs::resize_file(object("this object gets truncated"), 4);
  fs::remove(object("this object gets deleted"));

  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_EQ(entries_in(dir_ / "tmp"), 0u);
  EXPECT_FALSE(fs::exists(dir_ / "index.json.tmp"));
  EXPECT_FALSE(fs::exists(object("orphan")));
  EXPECT_FALSE(fs::exists(dir_ / "objects" / "not-an-object"));
  EXPECT_FALSE(fs::exists(object("this object gets truncated")));
  EXPECT_EQ(entries_in(dir_ / "objects"), 1u);

  EXPECT_FALSE(store->find(file("cut", "1")));
  EXPECT_FALSE(store->find(file("gone", "1")));
  EXPECT_EQ(content_of(*store, file("keep", "1")), "keep me");
  ASSERT_EQ(store->list().size(), 1u);
  const std::string index = read_text(dir_ / "index.json");
  EXPECT_EQ(index.find("\"cut\""), std::string::npos);
  EXPECT_EQ(index.find("\"gone\""), std::string::npos);
  EXPECT_NE(index.find("\"keep\""), std::string::npos);

  // The repaired store works normally.
  ASSERT_TRUE(add(*store, file("cut", "1"), "this object gets truncated"));
  EXPECT_EQ(content_of(*store, file("cut", "1")), "this object gets truncated");
}

TEST_F(store_test, open_replaces_a_symlinked_object) {
  {
    auto store = open_store();
    ASSERT_TRUE(add(*store, file("f", "1"), "real"));
  }
  write_text(root_ / "elsewhere", "real");
  fs::remove(object("real"));
  fs::create_symlink(root_ / "elsewhere", object("real"));
  auto store = open_store();
  EXPECT_FALSE(store->find(file("f", "1")));
  EXPECT_FALSE(fs::exists(fs::symlink_status(object("real"))));
  EXPECT_TRUE(fs::exists(root_ / "elsewhere"));
}

TEST_F(store_test, open_item_refuses_to_follow_a_symlink) {
  auto store = open_store();
  ASSERT_TRUE(add(*store, file("f", "1"), "real"));
  write_text(root_ / "elsewhere", "fake");
  fs::remove(object("real"));
  fs::create_symlink(root_ / "elsewhere", object("real"));
  EXPECT_FALSE(store->open_item(file("f", "1")));
}

struct corrupt_case {
  const char* name;
  std::string text;
};

class store_corrupt_index_test : public store_test,
                                 public ::testing::WithParamInterface<corrupt_case> {};

TEST_P(store_corrupt_index_test, is_reported_and_left_untouched) {
  {
    auto store = open_store();
    ASSERT_TRUE(add(*store, file("f", "1"), "content"));
  }
  write_text(dir_ / "index.json", GetParam().text);
  const auto store = content_store::open({dir_, 0});
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error(), errc::corrupt_index);
  EXPECT_EQ(read_text(dir_ / "index.json"), GetParam().text);
  EXPECT_TRUE(fs::exists(object("content")));
}

std::string index_with(std::string_view item_json) {
  return "{\"version\":1,\"items\":[" + std::string(item_json) + "]}";
}

constexpr std::string_view good_sha =
    "\"sha256\":\"ed7002b439e9ac845f22357d822bac1444730fbdb6016d3ec9432297b9ec9f73\"";

std::string item_json(std::string_view overrides) {
  return "{\"kind\":\"file\",\"name\":\"f\",\"version\":\"1\",\"size\":7," + std::string(good_sha) +
         ",\"pinned\":false,\"added_at\":1700000000," + std::string(overrides) + "}";
}

INSTANTIATE_TEST_SUITE_P(
    cases, store_corrupt_index_test,
    ::testing::Values(
        corrupt_case{"not_json", "{not json"}, corrupt_case{"empty", ""},
        corrupt_case{"truncated", "{\"version\":1,\"items\":["},
        corrupt_case{"array_top", "[]"}, corrupt_case{"no_version", "{\"items\":[]}"},
        corrupt_case{"future_format", "{\"version\":2,\"items\":[]}"},
        corrupt_case{"no_items", "{\"version\":1}"},
        corrupt_case{"items_not_array", "{\"version\":1,\"items\":{}}"},
        corrupt_case{"item_not_object", index_with("42")},
        corrupt_case{"missing_last_used", index_with(item_json("\"x\":0"))},
        corrupt_case{"bad_kind",
                     index_with("{\"kind\":\"engine\",\"name\":\"f\",\"version\":\"1\",\"size\":7," +
                                std::string(good_sha) +
                                ",\"pinned\":false,\"added_at\":1,\"last_used\":1}")},
        corrupt_case{"negative_time", index_with(item_json("\"last_used\":-1"))},
        corrupt_case{"string_size",
                     index_with("{\"kind\":\"file\",\"name\":\"f\",\"version\":\"1\",\"size\":\"7\"," +
                                std::string(good_sha) +
                                ",\"pinned\":false,\"added_at\":1,\"last_used\":1}")},
        corrupt_case{"bad_sha",
                     index_with("{\"kind\":\"file\",\"name\":\"f\",\"version\":\"1\",\"size\":7,"
                                "\"sha256\":\"abc\",\"pinned\":false,\"added_at\":1,"
                                "\"last_used\":1}")},
        corrupt_case{"bad_name",
                     index_with("{\"kind\":\"file\",\"name\":\"../x\",\"version\":\"1\",\"size\":7," +
                                std::string(good_sha) +
                                ",\"pinned\":false,\"added_at\":1,\"last_used\":1}")},
        corrupt_case{"non_canonical_pattern",
                     index_with("{\"kind\":\"pattern\",\"name\":\"f\",\"version\":\"16.679.00\","
                                "\"size\":7," +
                                std::string(good_sha) +
                                ",\"pinned\":false,\"added_at\":1,\"last_used\":1}")},
        corrupt_case{"duplicate_key", index_with(item_json("\"last_used\":1") + "," +
                                                 item_json("\"last_used\":2"))}),
    [](const ::testing::TestParamInfo<corrupt_case>& test) { return std::string(test.param.name); });

TEST_F(store_test, the_sample_index_item_is_valid) {
  // Guards the corrupt-index cases above: the same item with a proper last_used loads.
  fs::create_directories(dir_ / "objects");
  write_text(object("content"), "content");
  ASSERT_EQ(to_hex(digest_of("content")),
            "ed7002b439e9ac845f22357d822bac1444730fbdb6016d3ec9432297b9ec9f73");
  write_text(dir_ / "index.json", index_with(item_json("\"last_used\":1700000001")));
  auto store = open_store();
  ASSERT_TRUE(store);
  const auto found = store->find(file("f", "1"));
  ASSERT_TRUE(found);
  EXPECT_EQ(found->size, 7u);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(found->added_at), 1700000000);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(found->last_used), 1700000001);
}

TEST_F(store_test, a_missing_index_with_objects_is_corrupt) {
  {
    auto store = open_store();
    ASSERT_TRUE(add(*store, file("f", "1"), "content"));
  }
  fs::remove(dir_ / "index.json");
  const auto store = content_store::open({dir_, 0});
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error(), errc::corrupt_index);
  EXPECT_TRUE(fs::exists(object("content")));
  EXPECT_FALSE(fs::exists(dir_ / "index.json"));
}

TEST_F(store_test, an_index_corrupted_while_running_is_not_overwritten) {
  auto store = open_store();
  ASSERT_TRUE(add(*store, file("f", "1"), "content"));
  write_text(dir_ / "index.json", "garbage");
  // Readers keep serving the last good index; writers refuse.
  EXPECT_TRUE(store->find(file("f", "1")));
  EXPECT_EQ(content_of(*store, file("f", "1")), "content");
  const auto added = add(*store, file("g", "1"), "more");
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error(), errc::corrupt_index);
  EXPECT_EQ(store->remove(file("f", "1")).error(), errc::corrupt_index);
  EXPECT_EQ(store->flush().error(), errc::corrupt_index);
  EXPECT_EQ(read_text(dir_ / "index.json"), "garbage");
  EXPECT_EQ(entries_in(dir_ / "tmp"), 0u);
  EXPECT_FALSE(fs::exists(object("more")));
}

TEST_F(store_test, item_file_closes_its_descriptor) {
  auto store = open_store();
  ASSERT_TRUE(add(*store, file("f", "1"), "x"));
  int fd = -1;
  {
    auto opened = store->open_item(file("f", "1"));
    ASSERT_TRUE(opened);
    item_file moved = std::move(*opened);
    EXPECT_EQ(opened->fd(), -1);
    fd = moved.fd();
    ASSERT_GE(fd, 0);
    EXPECT_EQ(moved.info().key, file("f", "1"));
    EXPECT_EQ(::fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  }
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
}

TEST_F(store_test, concurrent_use_from_threads_and_instances) {
  // Daemons set up logging before any thread starts; spdlog's registry is a lazily built static
  // in an uninstrumented library, which ThreadSanitizer would otherwise report.
  spdlog::default_logger_raw();
  auto first = open_store(50'000);
  auto second = open_store(50'000);
  std::atomic<int> failures{0};
  const auto worker = [&](content_store& store, int id) {
    for (int i = 0; i < 20; ++i) {
      const std::string name = "t" + std::to_string(id) + "-" + std::to_string(i);
      const std::string content(1000 + id * 10 + i, static_cast<char>('a' + id));
      if (!store.add_file(source_for(id, i, content), file(name, "1"))) {
        ++failures;
      }
      auto opened = store.open_item(file(name, "1"));
      if (opened && read_fd(opened->fd()) != content) {
        ++failures;
      }
      store.list();
      store.find_satisfying(item_kind::file, name, "1");
      if (i % 5 == 0 && !store.flush()) {
        ++failures;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int id = 0; id < 4; ++id) {
    threads.emplace_back(worker, std::ref(id % 2 == 0 ? *first : *second), id);
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(first->total_size(), 50'000u);
  EXPECT_EQ(first->list().size(), second->list().size());
  // Every indexed item has its object, and no other object exists.
  const auto items = first->list();
  for (const item& it : items) {
    EXPECT_TRUE(fs::exists(dir_ / "objects" / to_hex(it.sha256))) << it.key.name;
  }
  EXPECT_EQ(entries_in(dir_ / "objects"), items.size());
  EXPECT_EQ(entries_in(dir_ / "tmp"), 0u);
}

}  // namespace
}  // namespace lanrelay
