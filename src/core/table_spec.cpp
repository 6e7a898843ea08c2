#include "webhookdb/table_spec.hpp"

#include <openssl/evp.h>

#include <array>
#include <set>

#include "webhookdb/codec.hpp"
#include "webhookdb/errors.hpp"

namespace webhookdb {
namespace {

constexpr std::size_t kMaxIdentifier = 63;

std::string md5_hex(const std::string& text) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest.data(), &len, EVP_md5(), nullptr);
  return codec::hex_encode(std::string_view(reinterpret_cast<const char*>(digest.data()), len));
}

}  // namespace

std::string index_name(const std::string& opaque_id, const std::vector<std::string>& columns) {
  std::string cols;
  for (const auto& c : columns) {
    if (!cols.empty()) cols += '_';
    cols += c;
  }
  std::string name = opaque_id + "_" + cols + "_idx";
  if (name.size() <= kMaxIdentifier) return name;
  const std::size_t fixed = opaque_id.size() + 5;  // "_" + "_idx"
  const std::size_t room = fixed < kMaxIdentifier ? kMaxIdentifier - fixed : 0;
  if (room >= 8) return opaque_id + "_" + md5_hex(cols).substr(0, std::min<std::size_t>(room, 32)) + "_idx";
  // A prefix too long to leave room for a hash (never a real opaque id): keep
  // its first bytes, cut on a UTF-8 boundary, and hash prefix and columns
  // together so that distinct long prefixes still give distinct names.
  std::size_t keep = kMaxIdentifier - 5 - 32;
  while (keep > 0 && (static_cast<unsigned char>(opaque_id[keep]) & 0xC0U) == 0x80U) --keep;
  return opaque_id.substr(0, keep) + "_" + md5_hex(opaque_id + "_" + cols) + "_idx";
}

std::optional<std::size_t> TableSpec::column_index(const std::string& name) const {
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (columns[i].name == name) return i;
  }
  return std::nullopt;
}

void TableSpec::validate() const {
  if (table.empty()) throw BrokenSpecification("table name is empty");
  if (remote_key.name.empty())
    throw BrokenSpecification("table '" + table + "': remote key column has no name");
  std::set<std::string> names{"pk", "data", remote_key.name};
  if (remote_key.name == "pk" || remote_key.name == "data") {
    throw BrokenSpecification("table '" + table + "': remote key may not be named '" + remote_key.name + "'");
  }
  if (enrichment) names.insert("enrichment");
  for (const auto& col : columns) {
    if (col.name.empty()) throw BrokenSpecification("table '" + table + "': a column has no name");
    if (!names.insert(col.name).second) {
      throw BrokenSpecification("table '" + table + "': duplicate column '" + col.name + "'");
    }
  }
  if (update_rule.kind == UpdateRule::Kind::newer && !column_index(update_rule.column)) {
    throw BrokenSpecification("table '" + table + "': update rule names unknown column '" +
                              update_rule.column + "'");
  }
  if (update_rule.kind == UpdateRule::Kind::custom && (!update_rule.fn || update_rule.sql.empty())) {
    throw BrokenSpecification("table '" + table + "': a custom update rule needs both sql and fn");
  }
  (void)indexes();
}

std::vector<IndexSpec> TableSpec::indexes() const {
  std::vector<IndexSpec> out;
  for (const auto& col : columns) {
    if (!col.index && !col.index_not_null) continue;
    IndexSpec idx;
    idx.columns = {col.name};
    if (col.index_not_null) idx.where = "\"" + col.name + "\" IS NOT NULL";
    out.push_back(std::move(idx));
  }
  for (const auto& extra : extra_indexes) out.push_back(extra);
  std::set<std::string> seen;
  for (auto& idx : out) {
    if (idx.columns.empty()) throw BrokenSpecification("table '" + table + "': an index has no columns");
    for (const auto& c : idx.columns) {
      if (c != remote_key.name && !column_index(c) && !(c == "data") && !(c == "enrichment" && enrichment)) {
        throw BrokenSpecification("table '" + table + "': index on unknown column '" + c + "'");
      }
    }
    if (idx.name.empty()) idx.name = index_name(opaque_id.empty() ? table : opaque_id, idx.columns);
    if (!seen.insert(idx.name).second) {
      throw BrokenSpecification("table '" + table + "': duplicate index name '" + idx.name + "'");
    }
  }
  return out;
}

}  // namespace webhookdb
