#include "api_server/dataset.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <mutex>

namespace webhookdb::tools {
namespace {

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30U)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27U)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31U);
}

std::string random_chars(std::uint64_t& state, std::size_t n) {
  static constexpr std::string_view kAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out += kAlphabet[splitmix64(state) % kAlphabet.size()];
  return out;
}

std::string padded(std::size_t value, int width) {
  std::string s = std::to_string(value);
  if (static_cast<int>(s.size()) < width) s.insert(0, static_cast<std::size_t>(width) - s.size(), '0');
  return s;
}

constexpr std::array<std::string_view, 16> kWords = {
    "order",  "invoice", "subscription", "renewal", "widget", "premium", "monthly", "annual",
    "refund", "gadget",  "shipping",     "express", "bundle", "license", "seat",    "support"};
constexpr std::array<std::string_view, 4> kStatuses = {"succeeded", "succeeded", "pending", "failed"};
constexpr std::array<std::string_view, 4> kCurrencies = {"usd", "eur", "gbp", "cad"};

}  // namespace

Dataset::Dataset(std::size_t objects, std::uint64_t seed, std::size_t duplicates, std::int64_t base_time)
    : count_(objects) {
  objects_.reserve(objects);
  by_id_.reserve(objects);
  for (std::size_t i = 0; i < objects; ++i) {
    std::uint64_t state = seed * 0x100000001B3ULL + i;
    Object o;
    // Sorted by index, unique, Stripe-shaped.
    o.id = "ch_" + padded(i, 7) + random_chars(state, 17);
    const auto created = base_time + static_cast<std::int64_t>(i) * 60;
    const auto updated = created + static_cast<std::int64_t>(splitmix64(state) % 3600);
    std::string description;
    while (description.size() < 560) {
      if (!description.empty()) description += ' ';
      description += kWords[splitmix64(state) % kWords.size()];
    }
    o.doc = nlohmann::ordered_json{
        {"id", o.id},
        {"object", "charge"},
        {"amount", 100 + static_cast<std::int64_t>(splitmix64(state) % 100000)},
        {"currency", kCurrencies[splitmix64(state) % kCurrencies.size()]},
        {"customer", "cus_" + random_chars(state, 14)},
        {"status", kStatuses[splitmix64(state) % kStatuses.size()]},
        {"description", description},
        {"metadata",
         {{"order_id", "ord_" + padded(i, 8)},
          {"channel", i % 3 == 0 ? "web" : (i % 3 == 1 ? "mobile" : "pos")},
          {"note", random_chars(state, 48)}}},
        {"receipt_email", "customer" + std::to_string(i) + "@example.com"},
        {"livemode", false},
        {"created", created},
        {"updated", updated},
    };
    o.text = o.doc.dump();
    o.updated = updated;
    o.created = created;
    by_id_.emplace(o.id, i);
    objects_.push_back(std::move(o));
  }

  plain_.reserve(objects);
  for (std::size_t i = 0; i < objects; ++i) plain_.push_back({static_cast<std::uint32_t>(i), false});

  // Stale copies spread evenly, each listed three entries after its object.
  duplicates = std::min(duplicates, objects);
  std::map<std::size_t, std::vector<std::uint32_t>> after;
  for (std::size_t k = 0; k < duplicates; ++k) {
    const std::size_t j = (k * objects) / duplicates + (objects / duplicates) / 2;
    const auto idx = static_cast<std::uint32_t>(std::min(j, objects - 1));
    if (stale_.count(idx) != 0) continue;
    auto doc = objects_[idx].doc;
    const auto stale_updated = doc["updated"].get<std::int64_t>() - 86400;
    doc["updated"] = stale_updated;
    doc["amount"] = doc["amount"].get<std::int64_t>() + 1;
    doc["description"] = "[stale copy] " + doc["description"].get<std::string>();
    stale_.emplace(idx, Stale{doc.dump(), stale_updated});
    after[std::min<std::size_t>(idx + 3, objects - 1)].push_back(idx);
  }
  listing_.reserve(objects + stale_.size());
  for (std::size_t i = 0; i < objects; ++i) {
    listing_.push_back({static_cast<std::uint32_t>(i), false});
    if (auto it = after.find(i); it != after.end()) {
      for (auto idx : it->second) listing_.push_back({idx, true});
    }
  }
}

std::string Dataset::id(std::size_t index) const { return objects_.at(index).id; }

std::optional<std::size_t> Dataset::index_of(std::string_view id) const {
  const auto it = by_id_.find(std::string(id));
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

nlohmann::json Dataset::object(std::size_t index) const {
  std::shared_lock lock(mutex_);
  return nlohmann::json::parse(objects_.at(index).text);
}

std::vector<nlohmann::json> Dataset::objects() const {
  std::shared_lock lock(mutex_);
  std::vector<nlohmann::json> out;
  out.reserve(objects_.size());
  for (const auto& o : objects_) out.push_back(nlohmann::json::parse(o.text));
  return out;
}

std::int64_t Dataset::updated(std::size_t index) const {
  std::shared_lock lock(mutex_);
  return objects_.at(index).updated;
}

std::vector<std::size_t> Dataset::duplicated_indexes() const {
  std::vector<std::size_t> out;
  for (const auto& [idx, stale] : stale_) out.push_back(idx);
  std::sort(out.begin(), out.end());
  return out;
}

void Dataset::touch(const std::vector<std::size_t>& indexes, std::int64_t updated) {
  std::unique_lock lock(mutex_);
  for (const auto i : indexes) {
    if (i >= objects_.size()) continue;
    auto& o = objects_[i];
    o.doc["updated"] = updated;
    o.text = o.doc.dump();
    o.updated = updated;
  }
}

bool Dataset::set_deleted(std::size_t index, bool deleted, std::int64_t updated) {
  std::unique_lock lock(mutex_);
  if (index >= objects_.size() || objects_[index].deleted == deleted) return false;
  auto& o = objects_[index];
  o.deleted = deleted;
  deleted_count_ = deleted ? deleted_count_ + 1 : deleted_count_ - 1;
  o.doc["updated"] = updated;
  o.text = o.doc.dump();
  o.updated = updated;
  return true;
}

bool Dataset::deleted(std::size_t index) const {
  std::shared_lock lock(mutex_);
  return index < objects_.size() && objects_[index].deleted;
}

bool Dataset::entry_listed(const Entry& e, std::optional<std::int64_t> since) const {
  if (objects_[e.index].deleted) return false;
  return !since || entry_updated(e) >= *since;
}

std::int64_t Dataset::entry_updated(const Entry& e) const {
  if (e.stale) return stale_.at(e.index).updated;
  return objects_[e.index].updated;
}

const std::string& Dataset::entry_text(const Entry& e) const {
  return e.stale ? stale_.at(e.index).text : objects_[e.index].text;
}

Dataset::Slice Dataset::scan(bool listing, std::size_t position, std::size_t limit,
                             std::optional<std::int64_t> since) const {
  std::shared_lock lock(mutex_);
  const auto& seq = sequence(listing);
  Slice slice;
  std::size_t pos = position;
  for (; pos < seq.size() && slice.count < limit; ++pos) {
    if (!entry_listed(seq[pos], since)) continue;
    // Objects are of about one size: one allocation for the page, not a
    // copy per doubling (the benchmark's server copies, issue 19).
    if (slice.count == 0) {
      slice.items.reserve(std::min(limit, seq.size() - pos) * (entry_text(seq[pos]).size() + 64));
    }
    if (slice.count > 0) slice.items += ',';
    slice.items += entry_text(seq[pos]);
    ++slice.count;
  }
  // Skip ahead to the next match, so has_more is exact and cursors skip gaps.
  while (pos < seq.size() && !entry_listed(seq[pos], since)) ++pos;
  slice.next = pos;
  slice.more = pos < seq.size();
  return slice;
}

Dataset::Slice Dataset::nth(bool listing, std::size_t skip, std::size_t limit, std::optional<std::int64_t> since,
                            std::size_t& total) const {
  const auto& seq = sequence(listing);
  std::size_t position = skip;
  {
    std::shared_lock lock(mutex_);
    if (!since && deleted_count_ == 0) {
      total = seq.size();
    } else {
      // Deleted objects are skipped with or without a filter.
      total = 0;
      position = seq.size();
      for (std::size_t pos = 0; pos < seq.size(); ++pos) {
        if (!entry_listed(seq[pos], since)) continue;
        if (total == skip) position = pos;
        ++total;
      }
    }
  }
  if (skip >= total) {
    Slice empty;
    empty.next = seq.size();
    return empty;
  }
  return scan(listing, position, limit, since);
}

}  // namespace webhookdb::tools
