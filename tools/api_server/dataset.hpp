#pragma once
// The API server's data: N Stripe-charge-like objects (about 1 KB each),
// generated from a seed, so every run and every test sees the same ids and
// values. Thread-safe: pages are read while objects are touched.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace webhookdb::tools {

class Dataset {
 public:
  // `duplicates` objects are also listed a second time, a few entries after
  // their current version, as a stale copy (updated one day earlier, a
  // different amount): a store must keep the newer one. The stale copies are
  // only in the listing sequence (see scan), not in the plain one.
  Dataset(std::size_t objects, std::uint64_t seed, std::size_t duplicates = 0,
          std::int64_t base_time = 1'600'000'000);

  [[nodiscard]] std::size_t size() const noexcept { return count_; }
  [[nodiscard]] std::size_t duplicates() const noexcept { return stale_.size(); }
  // Entries of the listing sequence: objects plus stale copies.
  [[nodiscard]] std::size_t listing_size() const noexcept { return listing_.size(); }

  [[nodiscard]] std::string id(std::size_t index) const;
  [[nodiscard]] std::optional<std::size_t> index_of(std::string_view id) const;
  // The current version of an object.
  [[nodiscard]] nlohmann::json object(std::size_t index) const;
  [[nodiscard]] std::vector<nlohmann::json> objects() const;
  [[nodiscard]] std::int64_t updated(std::size_t index) const;
  // `created` (unix seconds) of an object: ascending with the index, never touched.
  [[nodiscard]] std::int64_t created(std::size_t index) const { return objects_.at(index).created; }
  // Indexes of the objects that have a stale copy.
  [[nodiscard]] std::vector<std::size_t> duplicated_indexes() const;

  // Sets `updated` (unix seconds) of the given objects; out-of-range indexes are ignored.
  void touch(const std::vector<std::size_t>& indexes, std::int64_t updated);
  // Deletes (or restores) an object at the source (mutations.hpp): a
  // deleted one is in no listing; both set its `updated`. False when the
  // index is out of range or the object already is in that state.
  bool set_deleted(std::size_t index, bool deleted, std::int64_t updated);
  [[nodiscard]] bool deleted(std::size_t index) const;

  struct Slice {
    std::string items;  // the items' JSON, comma-separated (no brackets)
    std::size_t count = 0;
    // Position just after the last item taken; with `more`, the position of
    // the next matching entry.
    std::size_t next = 0;
    bool more = false;
  };
  // Up to `limit` entries from `position` on with updated >= since.
  [[nodiscard]] Slice scan(bool listing, std::size_t position, std::size_t limit,
                           std::optional<std::int64_t> since) const;
  // The same, skipping the first `skip` matching entries; `total` gets the
  // number of matching entries.
  [[nodiscard]] Slice nth(bool listing, std::size_t skip, std::size_t limit, std::optional<std::int64_t> since,
                          std::size_t& total) const;

 private:
  struct Entry {
    std::uint32_t index;
    bool stale;
  };
  struct Object {
    std::string id;
    nlohmann::ordered_json doc;
    std::string text;  // doc.dump(), kept for fast pages
    std::int64_t updated = 0;
    std::int64_t created = 0;
    bool deleted = false;
  };
  struct Stale {
    std::string text;
    std::int64_t updated;
  };

  [[nodiscard]] const std::vector<Entry>& sequence(bool listing) const { return listing ? listing_ : plain_; }
  [[nodiscard]] std::int64_t entry_updated(const Entry& e) const;
  [[nodiscard]] const std::string& entry_text(const Entry& e) const;
  // Listed for an updated-since filter: not deleted, and updated >= since.
  [[nodiscard]] bool entry_listed(const Entry& e, std::optional<std::int64_t> since) const;

  std::size_t count_;
  std::vector<Object> objects_;
  std::unordered_map<std::string, std::size_t> by_id_;
  std::unordered_map<std::uint32_t, Stale> stale_;
  std::vector<Entry> plain_;
  std::vector<Entry> listing_;
  std::size_t deleted_count_ = 0;
  mutable std::shared_mutex mutex_;
};

}  // namespace webhookdb::tools
