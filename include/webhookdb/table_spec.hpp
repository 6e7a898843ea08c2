#pragma once
// The shape of one replication table: pk bigserial, the remote key, the
// denormalized columns in declared order, optional enrichment, data last.

#include <optional>
#include <string>
#include <vector>

#include "webhookdb/column.hpp"
#include "webhookdb/deletes.hpp"
#include "webhookdb/export.hpp"
#include "webhookdb/update_rule.hpp"

namespace webhookdb {

struct IndexSpec {
  std::vector<std::string> columns;
  // Partial index predicate (SQL over quoted column names), empty for none.
  std::string where;
  bool unique = false;
  // Filled by TableSpec::indexes(): <opaque_id>_<col>_<col>_idx, md5-shortened past 63 bytes.
  std::string name;
};

struct WEBHOOKDB_EXPORT TableSpec {
  std::string schema = "public";
  std::string table;
  // Prefix of index names (the integration's opaque id).
  std::string opaque_id;
  Column remote_key;
  std::vector<Column> columns;
  bool enrichment = false;
  // Indexes beyond those declared on columns (composite ones).
  std::vector<IndexSpec> extra_indexes;
  UpdateRule update_rule;
  // soft: the last column is kDeletedAtColumn (the Replicator appends it);
  // hard: the store removes rows whose kDeletedAtColumn value is not null and
  // keeps tombstones for them (see deletes.hpp).
  DeleteMode deletes = DeleteMode::none;

  // Index position of a denormalized column, or nullopt.
  [[nodiscard]] std::optional<std::size_t> column_index(const std::string& name) const;
  // Every index (column ones, then extra), named. Throws BrokenSpecification
  // on duplicate names, unknown columns, duplicate column names or an empty
  // table name.
  [[nodiscard]] std::vector<IndexSpec> indexes() const;
  // Checks the spec (names present and unique, update rule column exists).
  void validate() const;
};

// WebhookDB's index naming: <opaque_id>_<col>_<col>_idx; when that passes 63
// bytes, the column part becomes a truncated md5 of itself. A prefix over 50
// bytes is cut (on a UTF-8 boundary) and hashed with the columns.
[[nodiscard]] WEBHOOKDB_EXPORT std::string index_name(const std::string& opaque_id,
                                                      const std::vector<std::string>& columns);

}  // namespace webhookdb
