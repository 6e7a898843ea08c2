#include "webhookdb/pg/replica_store.hpp"

#include <pqxx/tablewriter>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

#include "pg/pool_impl.hpp"
#include "pg/sql.hpp"
#include "pg/values.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/json_text.hpp"
#include "webhookdb/pg/advisory_lock.hpp"

// One encoded cell, passed to libpq without an extra copy.
namespace webhookdb::pg {
struct CellRef {
  const char* data = nullptr;
  std::size_t size = 0;
  bool null = true;
};
}  // namespace webhookdb::pg

namespace pqxx {
template <>
struct string_traits<webhookdb::pg::CellRef> {
  static constexpr const char* name() noexcept { return "webhookdb::pg::CellRef"; }
  static constexpr bool has_null() noexcept { return true; }
  static bool is_null(const webhookdb::pg::CellRef& c) { return c.null; }
  static webhookdb::pg::CellRef null() { return {}; }
  [[noreturn]] static void from_string(const char[], webhookdb::pg::CellRef&) {
    throw pqxx::usage_error("CellRef is write-only");
  }
  static std::string to_string(const webhookdb::pg::CellRef& c) { return std::string(c.data, c.size); }
};
}  // namespace pqxx

namespace webhookdb::pg {
namespace {

using nlohmann::json;

constexpr const char* kCheckpointTable = "webhookdb_backfill_checkpoints";
constexpr const char* kSweepRunsTable = "webhookdb_sweep_runs";
// Tables with deletes: the transaction time of the row's last write, or of
// the sweeping backfill page that listed it (deletes.hpp).
constexpr const char* kSeenColumn = "\"webhookdb_seen_at\"";
constexpr std::size_t kMaxParams = 65535;
// Rows per multi-row INSERT: past a few hundred, planning the VALUES list costs
// more than the round trips it saves.
constexpr std::size_t kRowsPerInsert = 500;
// COPY data is sent in chunks of about this size: small enough that the
// server parses one while the client encodes the next.
constexpr std::size_t kCopyChunkBytes = 128U << 10;
constexpr std::size_t kPageRows = 1000;

// Every name of one table, quoted and checked, before any SQL runs.
struct TableSql {
  std::string schema;
  std::string qschema;
  std::string qtable;     // "table"
  std::string qualified;  // "schema"."table"
  std::string qkey;
  ColumnType key_type = ColumnType::text;
  std::vector<std::string> qcols;
  // Columns written by an upsert, in order: key, columns, [enrichment], data.
  std::vector<std::string> insert_cols;
  std::vector<std::string> insert_types;
  // Deletes (deletes.hpp): the seen column, and for hard deletes the
  // tombstone table with every stored column (pk, insert_cols, seen).
  bool deletes = false;
  bool hard = false;
  std::string qtomb;
  std::vector<std::string> stored_cols;
  // The keys a sweeping backfill listed (see touch_seen).
  std::string qseen;
};

// The tombstone table's name: "<table>_tombstones" while it fits in
// PostgreSQL's 63 bytes, else a hash of the table's name.
std::string tombstone_name(const std::string& table);
// The seen set's name: "<table>_seen", or a hash of the table's name.
std::string seen_set_name(const std::string& table);

TableSql describe(const TableSpec& spec, const std::string& schema) {
  TableSql t;
  t.schema = schema;
  t.qschema = sql::ident(schema, "schema");
  t.qtable = sql::ident(spec.table, "table");
  t.qualified = t.qschema + "." + t.qtable;
  t.qkey = sql::ident(spec.remote_key.name, "column");
  t.key_type = spec.remote_key.type;
  t.insert_cols.push_back(t.qkey);
  t.insert_types.emplace_back(sql_type(spec.remote_key.type));
  for (const auto& col : spec.columns) {
    t.qcols.push_back(sql::ident(col.name, "column"));
    t.insert_cols.push_back(t.qcols.back());
    t.insert_types.emplace_back(sql_type(col.type));
  }
  if (spec.enrichment) {
    t.insert_cols.emplace_back("\"enrichment\"");
    t.insert_types.emplace_back("jsonb");
  }
  t.insert_cols.emplace_back("\"data\"");
  t.insert_types.emplace_back("jsonb");
  t.deletes = spec.deletes != DeleteMode::none;
  t.hard = spec.deletes == DeleteMode::hard;
  if (t.deletes) t.qseen = t.qschema + "." + sql::ident(seen_set_name(spec.table), "table");
  if (t.hard) {
    t.qtomb = t.qschema + "." + sql::ident(tombstone_name(spec.table), "table");
    t.stored_cols.emplace_back("\"pk\"");
    t.stored_cols.insert(t.stored_cols.end(), t.insert_cols.begin(), t.insert_cols.end());
    t.stored_cols.emplace_back(kSeenColumn);
  }
  return t;
}

std::string joined(const std::vector<std::string>& items, std::string_view sep = ", ") {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += sep;
    out += items[i];
  }
  return out;
}

// 16 hex digits naming a text (FNV-1a, 64 bits): prepared statements and
// staging tables are named after what they are.
std::string text_hash(const std::string& text) {
  std::uint64_t h = 14695981039346656037ULL;  // FNV-1a 64-bit offset basis
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// A prepared statement's name, from its text (its hash and length).
std::string statement_name(const std::string& text) {
  return "webhookdb_upsert_" + text_hash(text) + "_" + std::to_string(text.size());
}

std::string tombstone_name(const std::string& table) {
  const std::string plain = table + "_tombstones";
  if (plain.size() <= 63) return plain;
  return "webhookdb_tombstones_" + text_hash(table);
}

// The seen set's name: "<table>_seen", or a hash of the table's name.
std::string seen_set_name(const std::string& table) {
  const std::string plain = table + "_seen";
  if (plain.size() <= 63) return plain;
  return "webhookdb_seen_" + text_hash(table);
}

std::string key_repr(const json& key) {
  if (key.is_string()) return sql::printable(key.get_ref<const std::string&>());
  return key.dump(-1, ' ', false, json::error_handler_t::replace);
}

// "ON CONFLICT (key) DO UPDATE SET ... [WHERE rule]".
std::string conflict_clause(const TableSpec& spec, const TableSql& t, bool apply_rule) {
  std::vector<std::string> sets;
  for (std::size_t i = 0; i < spec.columns.size(); ++i) {
    const auto& col = spec.columns[i];
    const auto& q = t.qcols[i];
    if (col.keeps_existing) continue;
    if (col.skips_nil) {
      sets.push_back(q + " = COALESCE(EXCLUDED." + q + ", " + t.qtable + "." + q + ")");
    } else {
      sets.push_back(q + " = EXCLUDED." + q);
    }
  }
  if (spec.enrichment) sets.emplace_back("\"enrichment\" = EXCLUDED.\"enrichment\"");
  sets.emplace_back("\"data\" = EXCLUDED.\"data\"");
  if (t.deletes) sets.push_back(std::string(kSeenColumn) + " = now()");
  std::string out = "ON CONFLICT (" + t.qkey + ") DO UPDATE SET " + joined(sets);
  if (!apply_rule) return out;
  const auto& rule = spec.update_rule;
  switch (rule.kind) {
    case UpdateRule::Kind::always:
      break;
    case UpdateRule::Kind::newer: {
      const std::string q = sql::ident(rule.column, "column");
      out += " WHERE (" + t.qtable + "." + q + " < EXCLUDED." + q + " OR " + t.qtable + "." + q + " IS NULL)";
      break;
    }
    case UpdateRule::Kind::data_differs:
      out += " WHERE " + t.qtable + ".\"data\" IS DISTINCT FROM EXCLUDED.\"data\"";
      break;
    case UpdateRule::Kind::custom:
      if (rule.sql.empty()) throw BrokenSpecification("table '" + spec.table + "': custom update rule has no SQL");
      out += " WHERE (" + sql::replace_all(rule.sql, "{table}", t.qtable) + ")";
      break;
  }
  return out;
}

// The rows of one batch: duplicate keys resolved and sorted, keys encoded.
// The other cells are encoded when the batch is written: all at once for the
// INSERT paths, row by row into the COPY stream for the COPY path (so the
// server works on the first rows while the client encodes the next ones).
struct KeyedBatch {
  std::vector<std::size_t> source;  // input index of each unique row
  std::vector<std::string> keys;    // its encoded key

  [[nodiscard]] std::size_t size() const noexcept { return source.size(); }
};

KeyedBatch key_batch(const TableSpec& spec, const TableSql& t, std::span<const Row> rows) {
  // The last row of each key wins.
  std::vector<std::string> keys(rows.size());
  std::unordered_map<std::string, std::size_t> last;
  last.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    if (row.key.is_null()) throw InvalidInput("remote key is null", t.qualified + " row " + std::to_string(i));
    if (row.values.size() != spec.columns.size()) {
      throw InvalidInput("row has " + std::to_string(row.values.size()) + " values but the table has " +
                             std::to_string(spec.columns.size()) + " columns",
                         "remote key " + key_repr(row.key));
    }
    try {
      values::encode(t.key_type, row.key, keys[i]);
    } catch (const InvalidInput& e) {
      throw InvalidInput(std::string(e.what()) + " in the remote key column", "remote key " + key_repr(row.key));
    }
    last[values::canonical_key(t.key_type, keys[i])] = i;
  }
  std::vector<std::pair<std::string, std::size_t>> winners;
  winners.reserve(last.size());
  for (auto& [canonical, index] : last) winners.emplace_back(canonical, index);
  // Every writer sends its rows in one global order (the bytes of the key), so
  // concurrent batches with overlapping keys lock rows in the same order and
  // cannot deadlock each other.
  std::sort(winners.begin(), winners.end());
  KeyedBatch batch;
  batch.source.reserve(winners.size());
  batch.keys.reserve(winners.size());
  for (const auto& w : winners) {
    batch.source.push_back(w.second);
    batch.keys.push_back(std::move(keys[w.second]));
  }
  return batch;
}

// Encodes column `c` of `row` into `out`; false for NULL. Errors name the
// remote key and the column.
bool encode_column(const TableSpec& spec, const Row& row, std::size_t c, std::string& out) {
  try {
    return values::encode(spec.columns[c].type, row.values[c], out);
  } catch (const InvalidInput& e) {
    throw InvalidInput(std::string(e.what()) + " in column '" + sql::printable(spec.columns[c].name) + "'",
                       "remote key " + key_repr(row.key));
  }
}

// Encodes the cells of `row` after its key (columns, [enrichment], data),
// calling put(nonnull, text) for each and put_data(row.data) for the last;
// errors name the remote key and column.
template <class Put, class PutData>
void encode_cells(const TableSpec& spec, const Row& row, std::string& scratch, Put&& put,
                  PutData&& put_data) {
  for (std::size_t c = 0; c < spec.columns.size(); ++c) {
    const bool nonnull = encode_column(spec, row, c, scratch);
    put(nonnull, scratch);
  }
  if (spec.enrichment) {
    bool nonnull = false;
    try {
      nonnull = values::encode(ColumnType::jsonb, row.enrichment, scratch);
    } catch (const InvalidInput& e) {
      throw InvalidInput(std::string(e.what()) + " in enrichment", "remote key " + key_repr(row.key));
    }
    put(nonnull, scratch);
  }
  try {
    put_data(row.data);  // JSON null stays the jsonb 'null' (data is NOT NULL)
  } catch (const InvalidInput& e) {
    // Invalid UTF-8, or object keys that NUL removal would merge (named).
    const bool utf8 = e.message() == "invalid UTF-8 in JSON";
    throw InvalidInput(utf8 ? std::string("invalid UTF-8 in data") : e.message() + " in data",
                       "remote key " + key_repr(row.key));
  }
}

// encode_cells for text to be used as it is (the INSERT paths).
template <class Put>
void encode_cells(const TableSpec& spec, const Row& row, std::string& scratch, Put&& put) {
  encode_cells(spec, row, scratch, put, [&](const nlohmann::json& data) {
    scratch = to_jsonb_text(data);
    put(true, scratch);
  });
}

// Every cell of a batch, encoded before any SQL runs (the INSERT paths).
struct EncodedBatch {
  std::size_t width = 0;  // cells per row
  std::string arena;
  std::vector<CellRef> cells;  // pointers into arena, set once the arena is complete

  [[nodiscard]] const CellRef* row(std::size_t i) const noexcept { return cells.data() + i * width; }
};

// Fills `batch` in place: its cells point into its arena, which a move
// would not carry along when the text is short enough for the string's own
// buffer (a one-row batch of a few bytes).
void encode_batch(const TableSpec& spec, const TableSql& t, std::span<const Row> rows,
                  const KeyedBatch& keyed, EncodedBatch& batch) {
  batch.width = t.insert_cols.size();
  struct Span {
    std::size_t off;
    std::size_t len;
    bool null;
  };
  std::vector<Span> spans;
  spans.reserve(keyed.size() * batch.width);
  const auto put = [&](bool nonnull, const std::string& text) {
    spans.push_back({batch.arena.size(), nonnull ? text.size() : 0, !nonnull});
    if (nonnull) batch.arena += text;
  };
  std::string scratch;
  for (std::size_t p = 0; p < keyed.size(); ++p) {
    put(true, keyed.keys[p]);
    encode_cells(spec, rows[keyed.source[p]], scratch, put);
  }
  batch.cells.reserve(spans.size());
  for (const auto& s : spans) batch.cells.push_back({batch.arena.data() + s.off, s.len, s.null});
}

// Appends `text` as one element of a PostgreSQL array literal.
void append_array_element(std::string& out, std::string_view text) {
  out += '"';
  for (const char ch : text) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  out += '"';
}

// The batch's keys as a PostgreSQL array literal, in batch order.
std::string key_array(const KeyedBatch& batch) {
  std::string out = "{";
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (i > 0) out += ',';
    append_array_element(out, batch.keys[i]);
  }
  out += '}';
  return out;
}

// COPYs the rows at `positions` of the batch into `table` (`columns` already
// quoted), each prefixed with its position when `with_position` (the staging
// table's c0). Rows are encoded as they are streamed, in chunks small enough
// that the server parses one while the next is encoded. An encoding error
// leaves the COPY incomplete; the caller's transaction rolls it back.
void copy_rows(pqxx::work& tx, const std::string& table, const std::vector<std::string>& columns,
               const TableSpec& spec, std::span<const Row> rows, const KeyedBatch& batch,
               const std::vector<std::size_t>& positions, bool with_position) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  // tablewriter is deprecated in libpqxx 6.4 for its own escaping; only
  // write_raw_line is used, with text escaped here.
  pqxx::tablewriter writer(tx, table, columns.begin(), columns.end());
#pragma GCC diagnostic pop
  std::string chunk;
  chunk.reserve(kCopyChunkBytes + 4096);
  std::string scratch;
  const auto put = [&](bool nonnull, const std::string& text) {
    chunk += '\t';
    if (nonnull) {
      values::append_copy_escaped(chunk, text);
    } else {
      chunk += "\\N";
    }
  };
  for (const std::size_t p : positions) {
    if (!chunk.empty()) chunk += '\n';
    if (with_position) {
      chunk += std::to_string(p);
      chunk += '\t';
    }
    values::append_copy_escaped(chunk, batch.keys[p]);
    encode_cells(spec, rows[batch.source[p]], scratch, put, [&](const nlohmann::json& data) {
      chunk += '\t';
      values::append_jsonb_copy(chunk, data);
    });
    if (chunk.size() >= kCopyChunkBytes) {
      writer.write_raw_line(chunk);
      chunk.clear();
    }
  }
  if (!chunk.empty()) writer.write_raw_line(chunk);
  writer.complete();
}

// The column of a "newer" update rule when the rows the rule would leave
// alone can be found before sending them (a scalar column); else nullopt.
std::optional<std::size_t> prefilter_column(const TableSpec& spec, bool apply_rule) {
  if (!apply_rule || spec.update_rule.kind != UpdateRule::Kind::newer) return std::nullopt;
  const auto pos = spec.column_index(spec.update_rule.column);
  if (!pos) return std::nullopt;
  switch (spec.columns[*pos].type) {
    case ColumnType::jsonb:
    case ColumnType::text_array:
    case ColumnType::integer_array:
    case ColumnType::bigint_array:
      return std::nullopt;
    default:
      return pos;
  }
}

// The batch's values of column `col` as a PostgreSQL array literal, in batch order.
std::string column_array(const TableSpec& spec, std::span<const Row> rows, const KeyedBatch& batch, std::size_t col) {
  std::string out = "{";
  std::string scratch;
  for (std::size_t p = 0; p < batch.size(); ++p) {
    if (p > 0) out += ',';
    if (encode_column(spec, rows[batch.source[p]], col, scratch)) {
      append_array_element(out, scratch);
    } else {
      out += "NULL";
    }
  }
  out += '}';
  return out;
}

// Thrown inside an upsert's transaction when a key found missing was inserted
// by another writer before the direct COPY: the batch runs again, all staged.
struct ConcurrentInsert : StoreError {
  ConcurrentInsert() : StoreError("a concurrent writer inserted a key of this batch", true) {}
};

// The statements that keep a hard-delete table's tombstones ($1: the
// batch's keys as an array of the key type). Before a batch is written, its
// keys' tombstones move back into the table, so the update rule judges the
// batch against them exactly as against a soft-deleted row; afterwards its
// rows that are deletions move out again.
std::string tombstones_restore(const TableSql& t) {
  const std::string cols = joined(t.stored_cols);
  return "WITH webhookdb_moved AS (DELETE FROM " + t.qtomb + " WHERE " + t.qkey + " = ANY($1::" +
         std::string(sql_type(t.key_type)) + "[]) RETURNING " + cols + ") INSERT INTO " + t.qualified + " (" + cols +
         ") SELECT " + cols + " FROM webhookdb_moved";
}

// The deleted_at a buried row gets: its own (a deletion), or now() (the sweep).
enum class BuriedAt { as_written, now };

// Moves the rows `where` selects from the table into the tombstones.
std::string tombstones_bury(const TableSql& t, const std::string& where, BuriedAt at) {
  const std::string cols = joined(t.stored_cols);
  const std::string qdeleted = sql::ident(kDeletedAtColumn, "column");
  const std::string deleted_at_expr = at == BuriedAt::now ? std::string("now()") : qdeleted;
  std::vector<std::string> picked;
  std::vector<std::string> sets;
  for (const auto& c : t.stored_cols) {
    picked.push_back(c == qdeleted ? deleted_at_expr : c);
    if (c != t.qkey) sets.push_back(c + " = EXCLUDED." + c);
  }
  return "WITH webhookdb_gone AS (DELETE FROM " + t.qualified + " WHERE " + where + " RETURNING " + cols +
         ") INSERT INTO " + t.qtomb + " (" + cols + ") SELECT " + joined(picked) +
         " FROM webhookdb_gone ON CONFLICT (" + t.qkey + ") DO UPDATE SET " + joined(sets);
}

std::string tombstones_bury_batch(const TableSql& t) {
  return tombstones_bury(t,
                         t.qkey + " = ANY($1::" + std::string(sql_type(t.key_type)) + "[]) AND " +
                             sql::ident(kDeletedAtColumn, "column") + " IS NOT NULL",
                         BuriedAt::as_written);
}

// Marks every row of the batch seen, the ones the update rule left alone too
// (the rows written have it already: the same transaction's now()). The keys
// go into the table's seen set, emptied when a sweeping job begins (its first
// run): an UPDATE of webhookdb_seen_at rewrote every unchanged row, and an
// unchanged re-backfill of 200,000 rows took 5.4-5.9 s with those marks
// against 1.7-2.2 s without.
std::string touch_seen(const TableSql& t) {
  return "INSERT INTO " + t.qseen + " (\"key\") SELECT unnest($1::" + std::string(sql_type(t.key_type)) +
         "[]) ON CONFLICT DO NOTHING";
}

// CREATE TABLE IF NOT EXISTS for the tombstones, then any column the table
// gained since.
void ensure_tombstones(pqxx::transaction_base& tx, const TableSpec& spec, const TableSql& t) {
  std::vector<std::string> defs;
  defs.emplace_back("\"pk\" bigint NOT NULL");
  defs.push_back(t.qkey + " " + std::string(sql_type(spec.remote_key.type)) + " PRIMARY KEY");
  tx.exec_params("CREATE TABLE IF NOT EXISTS " + t.qtomb + " (" + joined(defs) + ")");
  std::vector<std::string> adds;
  for (std::size_t i = 0; i < spec.columns.size(); ++i) {
    adds.push_back("ADD COLUMN IF NOT EXISTS " + t.qcols[i] + " " + std::string(sql_type(spec.columns[i].type)));
  }
  if (spec.enrichment) adds.emplace_back("ADD COLUMN IF NOT EXISTS \"enrichment\" jsonb");
  adds.emplace_back("ADD COLUMN IF NOT EXISTS \"data\" jsonb NOT NULL");
  adds.push_back(std::string("ADD COLUMN IF NOT EXISTS ") + kSeenColumn + " timestamptz NOT NULL DEFAULT now()");
  tx.exec_params("ALTER TABLE " + t.qtomb + " " + joined(adds));
}

std::string select_list(const TableSpec& spec, const TableSql& t) {
  std::vector<std::string> items;
  items.push_back(values::select_expr(t.key_type, t.qkey));
  for (std::size_t i = 0; i < spec.columns.size(); ++i) {
    items.push_back(values::select_expr(spec.columns[i].type, t.qcols[i]));
  }
  if (spec.enrichment) items.emplace_back("\"enrichment\"");
  items.emplace_back("\"data\"");
  // For keyset pagination. Named apart: a second output column named like the
  // key (a bigint's ::text cast keeps the name) makes ORDER BY <key> ambiguous.
  items.push_back(t.qkey + "::text AS webhookdb_keyset");
  return joined(items);
}

Row decode_row(const TableSpec& spec, const pqxx::row& r) {
  Row row;
  pqxx::row::size_type i = 0;
  row.key = values::decode(spec.remote_key.type, field_text(r[i++]));
  row.values.reserve(spec.columns.size());
  for (const auto& col : spec.columns) row.values.push_back(values::decode(col.type, field_text(r[i++])));
  if (spec.enrichment) row.enrichment = values::decode(ColumnType::jsonb, field_text(r[i++]));
  row.data = values::decode(ColumnType::jsonb, field_text(r[i]));
  return row;
}

// The SQL computing a column from the stored data (or enrichment), for
// ensure_all_columns.
std::string fill_expr(const Column& col) {
  const std::string source = col.from_enrichment ? "\"enrichment\"" : "\"data\"";
  const std::string path = sql::path_literal(col.effective_data_key());
  const std::string as_text = "(" + source + " #>> " + path + ")";
  const std::string as_json = "(" + source + " #> " + path + ")";
  const std::string type(sql_type(col.type));
  if (col.converter.sql) {
    return "(" + col.converter.sql(col.type == ColumnType::jsonb ? as_json : as_text) + ")::" + type;
  }
  switch (col.type) {
    case ColumnType::jsonb:
      return as_json;
    case ColumnType::text_array:
    case ColumnType::integer_array:
    case ColumnType::bigint_array:
      return "(CASE WHEN jsonb_typeof(" + as_json + ") = 'array' THEN ARRAY(SELECT jsonb_array_elements_text(" +
             as_json + "))::" + type + " END)";
    default:
      return "(" + as_text + ")::" + type;
  }
}

std::string index_sql(const TableSpec& spec, const IndexSpec& idx, const TableSql& t, bool concurrently) {
  std::vector<std::string> cols;
  for (const auto& c : idx.columns) cols.push_back(sql::ident(c, "column"));
  std::string out = std::string("CREATE ") + (idx.unique ? "UNIQUE " : "") + "INDEX " +
                    (concurrently ? "CONCURRENTLY " : "") + "IF NOT EXISTS " + sql::ident(idx.name, "index") +
                    " ON " + t.qualified + " (" + joined(cols) + ")";
  std::string where = idx.where;
  if (idx.columns.size() == 1) {
    // A column's index_not_null predicate is rebuilt with the name quoted
    // properly (TableSpec::indexes() puts the raw name between quotes).
    const auto pos = spec.column_index(idx.columns[0]);
    if (pos && spec.columns[*pos].index_not_null && where == "\"" + idx.columns[0] + "\" IS NOT NULL") {
      where = cols[0] + " IS NOT NULL";
    }
  }
  if (!where.empty()) out += " WHERE " + where;
  return out;
}

void ensure_schema(pqxx::transaction_base& tx, const TableSql& t) {
  if (tx.exec_params("SELECT 1 FROM pg_namespace WHERE nspname = $1", t.schema).empty()) {
    tx.exec_params("CREATE SCHEMA IF NOT EXISTS " + t.qschema);
  }
}

// CREATE TABLE IF NOT EXISTS keeps a table that is already there, whatever
// its shape; the indexes and upserts would then fail with a bare `column
// "updated" does not exist`. An existing table must have the columns a
// replication table of `spec` cannot do without: pk, the remote key, data
// and every indexed column (other missing columns are ensure_all_columns's).
void check_existing_table(pqxx::transaction_base& tx, const TableSpec& spec, const TableSql& t,
                          const std::vector<IndexSpec>& indexes) {
  std::set<std::string> have;
  for (const auto& row : tx.exec_params("SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1)"
                                        " AND attnum > 0 AND NOT attisdropped",
                                        t.qualified)) {
    have.insert(row[0].as<std::string>());
  }
  if (have.empty()) return;  // no such table (or one without columns: CREATE fails clearly)
  std::vector<std::string> needed = {"pk", spec.remote_key.name, "data"};
  for (const auto& idx : indexes) needed.insert(needed.end(), idx.columns.begin(), idx.columns.end());
  std::vector<std::string> missing;
  for (const auto& name : needed) {
    const std::string shown = "'" + sql::printable(name) + "'";
    if (have.count(name) == 0 && std::find(missing.begin(), missing.end(), shown) == missing.end()) {
      missing.push_back(shown);
    }
  }
  if (!missing.empty()) {
    throw InvalidPrecondition("table " + t.qualified + " already exists with another shape: it has no column " +
                              joined(missing) + " (is it another integration's table, or not webhookdb's?)");
  }
}

// Fills columns just added (`sets`: "col = expr") from the stored data with
// UPDATEs over pk ranges of Config::fill_chunk_rows.
void fill_new_columns(ConnectionPool::Impl& impl, const TableSql& t, const std::vector<std::string>& sets) {
  const std::string update = "UPDATE " + t.qualified + " SET " + joined(sets) + " WHERE ";
  const std::int64_t chunk = std::max<std::int64_t>(1, impl.config.fill_chunk_rows);
  impl.autocommit("filling new columns of " + t.qualified, [&](pqxx::nontransaction& tx) {
    // The sequence tells the highest pk without scanning the table.
    const auto r = tx.exec_params("SELECT pg_sequence_last_value(pg_get_serial_sequence($1, 'pk')::regclass)",
                                  t.qualified);
    const std::int64_t max_pk = r[0][0].is_null() ? 0 : r[0][0].as<std::int64_t>();
    std::int64_t lower = 0;
    // One transaction per chunk: no lock on the whole table is held for long.
    for (std::int64_t upper = chunk; upper <= max_pk; upper += chunk) {
      tx.exec_params(update + "\"pk\" > " + std::to_string(lower) + " AND \"pk\" <= " + std::to_string(upper));
      lower = upper;
    }
    // Rows added since the sequence was read are caught by the open-ended last chunk.
    tx.exec_params(update + "\"pk\" > " + std::to_string(lower));
  });
}

std::string checked_text(const std::string& text, const char* what) {
  if (text.find('\0') != std::string::npos) throw InvalidInput(std::string(what) + " contains a NUL byte");
  if (!sql::valid_utf8(text)) throw InvalidInput(std::string(what) + " is not valid UTF-8");
  return text;
}

// What the last COPY-path batch into a table found, as a guess about the
// next one (backfills write runs of similar batches):
// - all_new: only new keys (a first backfill). The next batch is COPYed
//   straight in without asking the table; the unique key catches a wrong
//   guess, and the batch then runs again planned.
// - all_written: every row had to be written and some were there (every row
//   newer). The next batch goes through the staging table without asking;
//   the INSERT applies the rule either way.
// No entry: ask (the plan query), which pays off when rows are unchanged.
enum class CopyGuess : std::uint8_t { ask, all_new, all_written };

// The checkpoint an upsert saves in the same transaction as its rows.
struct CheckpointWrite {
  std::string sql;  // State::checkpoint_upsert()
  std::int64_t job_id = 0;
  std::string key;
  std::string token;
  bool finished = false;
};

// Writes one upsert() batch, one member function per phase: the rows are
// keyed (and, for the INSERT paths, encoded) when it is built; choose() picks
// the strategy; write() runs it in a transaction, with the checkpoint:
// - per_row: one prepared single-row INSERT per row;
// - multi_row: multi-row INSERT ... ON CONFLICT, kRowsPerInsert rows each;
// - the COPY path: plan_copy() finds the rows to send, then copy_direct()
//   (straight into the table) or copy_staged() (staging table, then one
//   INSERT ... SELECT ... ON CONFLICT that applies the update rule).
class BatchWriter {
 public:
  BatchWriter(const TableSpec& spec, const TableSql& t, std::span<const Row> rows, bool apply_rule)
      : spec_(spec),
        t_(t),
        rows_(rows),
        conflict_(conflict_clause(spec, t, apply_rule)),
        batch_(key_batch(spec, t, rows)),
        rule_col_(prefilter_column(spec, apply_rule)) {}

  [[nodiscard]] std::size_t size() const noexcept { return batch_.size(); }
  // The input index of the row at `position` of the batch.
  [[nodiscard]] std::size_t source(std::size_t position) const { return batch_.source[position]; }
  // True when the batch goes through the COPY path (it takes a turn, and
  // leaves a guess for the next batch into the table).
  [[nodiscard]] bool copies() const noexcept { return method_ == WriteMethod::staging_copy && size() > 0; }
  [[nodiscard]] CopyGuess next_guess() const noexcept { return next_guess_; }

  void save_checkpoint(CheckpointWrite checkpoint) { checkpoint_ = std::move(checkpoint); }
  // UpsertOptions::durable_later: commits as a checkpointed batch does.
  void durable_later() { durable_later_ = true; }
  // Small chunks go through the prepared unnest statement (see unnest_chunk).
  void prepare_small_chunks() { prepare_small_ = true; }
  // SeenMarks::every_row: the rows the update rule leaves alone are marked seen too.
  void mark_every_row_seen() { touch_all_ = t_.deletes; }

  // Picks the write method and prepares it; `guess` is the table's
  // (CopyGuess::ask for an empty batch).
  void choose(WriteMethod method, CopyGuess guess, const Config& config) {
    guess_ = guess;
    method_ = method;
    if (method_ == WriteMethod::automatic) {
      // Smaller batches go through COPY too while the table's recent COPY
      // batches let it skip the plan (the tail of a backfill's partition).
      const std::size_t threshold = config.copy_threshold;
      const bool copy = size() >= threshold || (size() * 10 >= threshold && guess_ != CopyGuess::ask);
      method_ = copy ? WriteMethod::staging_copy : WriteMethod::multi_row;
    }
    // The INSERT paths bind every cell: encode them all before any SQL runs.
    // The COPY path encodes each row as it streams it.
    if (method_ != WriteMethod::staging_copy) encode_batch(spec_, t_, rows_, batch_, encoded_);
    if (copies()) plan_sql_ = plan_query();
    direct_new_rows_ = method_ == WriteMethod::staging_copy;
    if (!direct_new_rows_) guess_ = CopyGuess::ask;
    async_commit_ = (checkpoint_.has_value() || durable_later_) && config.async_checkpointed_commits;
  }

  // Writes the batch; returns the positions (in the batch) of the rows
  // inserted or updated.
  std::vector<std::size_t> write(ConnectionPool::Impl& impl) {
    const std::string what = "upserting " + std::to_string(rows_.size()) + " rows into " + t_.qualified;
    const auto attempt = [this](pqxx::work& tx) { return write_in(tx); };
    try {
      return impl.in_transaction(what, impl.config.retries, attempt);
    } catch (const ConcurrentInsert&) {
      // A key was there after all (a wrong guess, or a concurrent writer got
      // there first): the batch runs again, planned and staged.
      guess_ = CopyGuess::ask;
      direct_new_rows_ = false;
      return impl.in_transaction(what, impl.config.retries, attempt);
    }
  }

 private:
  // The rows of a COPY-path batch to write, found by one query before writing.
  struct WritePlan {
    std::vector<std::size_t> positions;  // ascending
    bool any_existing = false;           // one of them is already in the table
  };

  // One attempt of write(), in its transaction.
  std::vector<std::size_t> write_in(pqxx::work& tx) {
    std::vector<std::size_t> out;
    if (async_commit_) tx.exec("SET LOCAL synchronous_commit = off");
    const bool keyed = size() > 0 && (t_.hard || touch_all_);
    if (keyed && batch_keys_.empty()) batch_keys_ = key_array(batch_);
    if (size() > 0 && t_.hard) tx.exec_params(tombstones_restore(t_), batch_keys_);
    if (size() > 0) {
      if (method_ == WriteMethod::single_row) {
        out = per_row(tx);
      } else if (method_ == WriteMethod::multi_row) {
        out = multi_row(tx);
      } else {
        out = copy_path(tx);
      }
    }
    if (size() > 0 && touch_all_) tx.exec_params(touch_seen(t_), batch_keys_);
    if (size() > 0 && t_.hard) tx.exec_params(tombstones_bury_batch(t_), batch_keys_);
    if (checkpoint_) {
      tx.exec_params(checkpoint_->sql, checkpoint_->job_id, checkpoint_->key, checkpoint_->token,
                     checkpoint_->finished);
    }
    return out;
  }

  std::vector<std::size_t> per_row(pqxx::work& tx) const {
    const std::size_t width = t_.insert_cols.size();
    std::string statement = "INSERT INTO " + t_.qualified + " (" + joined(t_.insert_cols) + ") VALUES (";
    for (std::size_t c = 0; c < width; ++c) {
      if (c > 0) statement += ", ";
      statement += "$" + std::to_string(c + 1) + "::" + t_.insert_types[c];
    }
    statement += ") " + conflict_ + " RETURNING 1";
    // Prepared once per connection (libpqxx ignores a repeated identical definition).
    const std::string name = statement_name(statement);
    tx.conn().prepare(name, statement);
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < size(); ++i) {
      const CellRef* cells = encoded_.row(i);
      const auto r = tx.exec_prepared(name, pqxx::prepare::make_dynamic_params(cells, cells + width));
      if (!r.empty()) out.push_back(i);
    }
    return out;
  }

  std::vector<std::size_t> multi_row(pqxx::work& tx) const {
    const std::size_t width = t_.insert_cols.size();
    const std::size_t per_statement = std::max<std::size_t>(1, std::min(kMaxParams / width, kRowsPerInsert));
    std::vector<std::string> names;
    for (std::size_t c = 0; c <= width; ++c) names.push_back("c" + std::to_string(c));
    std::vector<std::string> value_names(names.begin() + 1, names.end());
    const std::string head = "WITH webhookdb_rows (" + joined(names) + ") AS (VALUES ";
    const std::string tail =
        "), webhookdb_written AS (INSERT INTO " + t_.qualified + " (" + joined(t_.insert_cols) + ") SELECT " +
        joined(value_names) + " FROM webhookdb_rows " + conflict_ + " RETURNING " + t_.qkey +
        ") SELECT r.c0 FROM webhookdb_written w JOIN webhookdb_rows r ON r.c1 = w." + t_.qkey;
    std::vector<std::size_t> out;
    std::string statement;
    for (std::size_t start = 0; start < size(); start += per_statement) {
      const std::size_t end = std::min(size(), start + per_statement);
      if (end - start < per_statement && prepare_small_ && unnestable()) {
        for (const auto& row : unnest_chunk(tx, start, end)) out.push_back(start + row[0].as<std::size_t>());
        continue;
      }
      statement = head;
      std::size_t param = 1;
      for (std::size_t i = start; i < end; ++i) {
        if (i > start) statement += ", ";
        statement += "(" + std::to_string(i - start);
        for (std::size_t c = 0; c < width; ++c) {
          statement += ", $" + std::to_string(param++) + "::" + t_.insert_types[c];
        }
        statement += ")";
      }
      statement += tail;
      const CellRef* first = encoded_.row(start);
      const CellRef* last = encoded_.row(end);
      // Full chunks repeat the same text: prepare them once per connection
      // (only them, so a connection does not collect one per batch size;
      // smaller ones go through unnest_chunk when they can).
      pqxx::result r;
      if (end - start == per_statement) {
        const std::string name = statement_name(statement);
        tx.conn().prepare(name, statement);
        r = tx.exec_prepared(name, pqxx::prepare::make_dynamic_params(first, last));
      } else {
        r = tx.exec_params(statement, pqxx::prepare::make_dynamic_params(first, last));
      }
      for (const auto& row : r) out.push_back(start + row[0].as<std::size_t>());
    }
    return out;
  }

  // unnest() cannot carry array columns (it would flatten them).
  [[nodiscard]] bool unnestable() const {
    return std::none_of(t_.insert_types.begin(), t_.insert_types.end(),
                        [](const std::string& type) { return type.ends_with("[]"); });
  }

  // A chunk smaller than a full one (a webhook micro-batch, a page's tail):
  // one array per column through unnest(), so one prepared statement serves
  // every size. As a VALUES list it was parsed and planned for each batch:
  // about a third of PostgreSQL's CPU at 3,300 micro-batched webhooks/s
  // (perf, batches of about 20). Column 0 of the result: the row's offset in the chunk.
  pqxx::result unnest_chunk(pqxx::work& tx, std::size_t start, std::size_t end) const {
    const std::size_t width = t_.insert_cols.size();
    std::vector<std::string> names;
    std::vector<std::string> arrays;
    for (std::size_t c = 0; c < width; ++c) {
      names.push_back("c" + std::to_string(c + 1));
      arrays.push_back("$" + std::to_string(c + 1) + "::" + t_.insert_types[c] + "[]");
    }
    const std::string statement =
        "WITH webhookdb_rows (" + joined(names) + ", c0) AS (SELECT * FROM unnest(" + joined(arrays) +
        ") WITH ORDINALITY), webhookdb_written AS (INSERT INTO " + t_.qualified + " (" + joined(t_.insert_cols) +
        ") SELECT " + joined(names) + " FROM webhookdb_rows " + conflict_ + " RETURNING " + t_.qkey +
        ") SELECT r.c0 - 1 FROM webhookdb_written w JOIN webhookdb_rows r ON r.c1 = w." + t_.qkey;
    std::vector<std::string> literals(width, "{");
    for (std::size_t i = start; i < end; ++i) {
      const CellRef* cells = encoded_.row(i);
      for (std::size_t c = 0; c < width; ++c) {
        if (i > start) literals[c] += ',';
        if (cells[c].null) {
          literals[c] += "NULL";
        } else {
          append_array_element(literals[c], std::string_view(cells[c].data, cells[c].size));
        }
      }
    }
    for (auto& literal : literals) literal += '}';
    const std::string name = statement_name(statement);
    tx.conn().prepare(name, statement);
    return tx.exec_prepared(name, pqxx::prepare::make_dynamic_params(literals));
  }

  // COPY. When none of the rows to send is in the table yet (a first
  // backfill), they go straight into it: COPY's multi-row heap inserts,
  // no speculative insertion, close to raw COPY speed. Otherwise they go
  // through a temporary staging table and one INSERT ... SELECT ... ON
  // CONFLICT, which applies the update rule (again: the plan is a
  // snapshot, a concurrent writer may have moved on). Never split
  // between the two, so every writer still takes its keys in one global
  // order (splitting would let two writers lock keys in opposite orders
  // and deadlock). A concurrent writer inserting one of the keys first
  // makes the direct COPY fail on the unique key; the batch then runs
  // again, staged.
  std::vector<std::size_t> copy_path(pqxx::work& tx) {
    next_guess_ = CopyGuess::ask;
    const WritePlan plan = plan_copy(tx);
    if (plan.positions.empty()) return {};  // Every row is already stored as new or newer.
    if (direct_new_rows_ && !plan.any_existing) return copy_direct(tx, plan);
    return copy_staged(tx, plan);
  }

  // The COPY path first asks which rows to send: with a "newer" rule, the
  // rows the rule would leave alone are never sent (an incremental backfill
  // mostly sees rows it already has); then whether any row to send is in the
  // table (if none, they are COPYed straight into it).
  [[nodiscard]] std::string plan_query() const {
    const std::string key_type(sql_type(t_.key_type));
    if (rule_col_) {
      const std::string& qcol = t_.qcols[*rule_col_];
      return "SELECT webhookdb_b.i - 1, webhookdb_t." + t_.qkey + " IS NOT NULL FROM unnest($1::" + key_type +
             "[], $2::" + std::string(sql_type(spec_.columns[*rule_col_].type)) +
             "[]) WITH ORDINALITY AS webhookdb_b(k, v, i) LEFT JOIN " + t_.qualified +
             " webhookdb_t ON webhookdb_t." + t_.qkey + " = webhookdb_b.k WHERE webhookdb_t." + t_.qkey +
             " IS NULL OR webhookdb_t." + qcol + " < webhookdb_b.v OR webhookdb_t." + qcol + " IS NULL";
    }
    return "SELECT 1 FROM " + t_.qualified + " WHERE " + t_.qkey + " = ANY($1::" + key_type + "[]) LIMIT 1";
  }

  // The plan's arguments are built the first time a plan is asked for.
  void plan_arguments() {
    if (!keys_literal_.empty()) return;
    keys_literal_ = key_array(batch_);
    if (rule_col_) rule_literal_ = column_array(spec_, rows_, batch_, *rule_col_);
  }

  // The rows to send: every row when the guess skips the plan query, or when
  // there is no rule to filter by (then the query only asks whether any is
  // in the table, unless the batch is staged anyway).
  WritePlan plan_copy(pqxx::work& tx) {
    WritePlan plan;
    if (guess_ != CopyGuess::ask) {
      plan.positions.resize(size());
      for (std::size_t i = 0; i < size(); ++i) plan.positions[i] = i;
      plan.any_existing = guess_ == CopyGuess::all_written;
    } else if (rule_col_) {
      plan_arguments();
      for (const auto& r : tx.exec_params(plan_sql_, keys_literal_, rule_literal_)) {
        plan.positions.push_back(r[0].as<std::size_t>());
        if (r[1].as<bool>()) plan.any_existing = true;
      }
      std::sort(plan.positions.begin(), plan.positions.end());
    } else {
      plan.positions.resize(size());
      for (std::size_t i = 0; i < size(); ++i) plan.positions[i] = i;
      if (direct_new_rows_) plan_arguments();
      plan.any_existing = !direct_new_rows_ || !tx.exec_params(plan_sql_, keys_literal_).empty();
    }
    return plan;
  }

  // None of the rows to send is in the table: COPY them straight into it.
  std::vector<std::size_t> copy_direct(pqxx::work& tx, const WritePlan& plan) {
    try {
      copy_rows(tx, t_.qualified, t_.insert_cols, spec_, rows_, batch_, plan.positions, false);
    } catch (const pqxx::unique_violation&) {
      throw ConcurrentInsert();
    }
    if (plan.positions.size() == size()) next_guess_ = CopyGuess::all_new;
    return plan.positions;
  }

  // The rows go through the staging table and one INSERT ... SELECT ... ON
  // CONFLICT, which applies the update rule.
  std::vector<std::size_t> copy_staged(pqxx::work& tx, const WritePlan& plan) {
    std::vector<std::string> defs{"c0 integer"};
    std::vector<std::string> names{"c0"};
    for (std::size_t c = 0; c < t_.insert_cols.size(); ++c) {
      names.push_back("c" + std::to_string(c + 1));
      defs.push_back(names.back() + " " + t_.insert_types[c]);
    }
    std::vector<std::string> value_names(names.begin() + 1, names.end());
    // One staging table per session and column list, emptied by every
    // commit: creating and dropping one per batch was catalog work on
    // every batch (2.8 ms for the CREATE alone) and left dead catalog rows.
    const std::string stage_def = joined(defs);
    const std::string stage = "pg_temp.webhookdb_stage_" + text_hash(stage_def);
    tx.exec_params("CREATE TEMPORARY TABLE IF NOT EXISTS " + stage + " (" + stage_def +
                   ") ON COMMIT DELETE ROWS");
    copy_rows(tx, stage, names, spec_, rows_, batch_, plan.positions, true);
    const std::string insert = "INSERT INTO " + t_.qualified + " (" + joined(t_.insert_cols) + ") SELECT " +
                               joined(value_names) + " FROM " + stage + " " + conflict_;
    // The command's row count says how many were inserted or updated;
    // only when the rule left some alone does it matter which. Joining
    // the written keys back to the staging table on every batch cost
    // about a tenth of the statement (two sorts of text keys).
    const auto written = static_cast<std::size_t>(tx.exec_params(insert).affected_rows());
    std::vector<std::size_t> out;
    if (written == plan.positions.size()) {
      out = plan.positions;
    } else if (written > 0) {
      out = staged_rows_written(tx, stage);
    }
    if (rule_col_ && out.size() == size()) next_guess_ = CopyGuess::all_written;
    return out;
  }

  // The positions of the staged rows this transaction wrote.
  std::vector<std::size_t> staged_rows_written(pqxx::work& tx, const std::string& stage) const {
    std::vector<std::size_t> out;
    // The row versions this transaction wrote carry its id (no
    // savepoints here, so it is the top-level one).
    for (const auto& r :
         tx.exec_params("SELECT s.c0 FROM " + stage + " s JOIN " + t_.qualified + " w ON w." + t_.qkey +
                        " = s.c1 WHERE w.xmin = "
                        "xid(pg_current_xact_id())")) {
      out.push_back(r[0].as<std::size_t>());
    }
    return out;
  }

  const TableSpec& spec_;
  const TableSql& t_;
  std::span<const Row> rows_;
  const std::string conflict_;
  const KeyedBatch batch_;
  const std::optional<std::size_t> rule_col_;
  std::optional<CheckpointWrite> checkpoint_;
  WriteMethod method_ = WriteMethod::automatic;
  EncodedBatch encoded_;  // the INSERT paths' cells
  std::string plan_sql_;
  std::string keys_literal_;
  std::string rule_literal_;
  CopyGuess guess_ = CopyGuess::ask;
  CopyGuess next_guess_ = CopyGuess::ask;
  bool direct_new_rows_ = false;
  bool async_commit_ = false;
  bool durable_later_ = false;
  bool prepare_small_ = false;
  bool touch_all_ = false;
  std::string batch_keys_;  // the keys as an array literal, for the deletes' statements
};

}  // namespace

struct PgReplicaStore::State {
  std::shared_ptr<ConnectionPool> pool;
  std::mutex migrate_mutex;
  bool migrated = false;

  // The last COPY-path batch's guess about the next one, per table (CopyGuess).
  using Guess = CopyGuess;
  std::mutex guess_mutex;
  std::unordered_map<std::string, Guess> guesses;

  Guess guess(const std::string& table) {
    std::lock_guard lock(guess_mutex);
    auto it = guesses.find(table);
    return it == guesses.end() ? Guess::ask : it->second;
  }
  // True when the table's previous batch was written less than a second ago
  // (webhook micro-batches): its small chunks are then worth a prepared
  // statement. A table written once in a while (a tiny job's page) is not:
  // preparing cost such a job's first write about 0.5 ms more server CPU,
  // and each backend would keep one statement per table for good.
  bool written_recently(const std::string& table) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(guess_mutex);
    if (last_written.size() >= 4096) last_written.clear();  // bounded; forgetting only costs a plan
    auto [it, inserted] = last_written.try_emplace(table, now);
    const bool recent = !inserted && now - it->second < std::chrono::seconds(1);
    it->second = now;
    return recent;
  }
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> last_written;

  void set_guess(const std::string& table, Guess guess) {
    std::lock_guard lock(guess_mutex);
    if (guess == Guess::ask) {
      guesses.erase(table);
    } else {
      guesses[table] = guess;
    }
  }

  // COPY-path batches being written, per table (Config::max_concurrent_copies).
  std::mutex turn_mutex;
  std::condition_variable turn_free;
  std::unordered_map<std::string, int> copying;

  class Turn {
   public:
    Turn() = default;
    Turn(State* state, std::string table) : state_(state), table_(std::move(table)) {}
    Turn(Turn&& other) noexcept
        : state_(std::exchange(other.state_, nullptr)), table_(std::move(other.table_)) {}
    Turn& operator=(Turn&&) = delete;
    Turn(const Turn&) = delete;
    Turn& operator=(const Turn&) = delete;
    ~Turn() {
      if (state_ == nullptr) return;
      {
        std::lock_guard lock(state_->turn_mutex);
        if (--state_->copying[table_] == 0) state_->copying.erase(table_);
      }
      state_->turn_free.notify_all();
    }

   private:
    State* state_ = nullptr;
    std::string table_;
  };

  // Waits until fewer than max_concurrent_copies batches are being COPYed
  // into `table` (StoreError, retryable, after acquire_timeout).
  [[nodiscard]] Turn take_turn(const std::string& table) {
    const Config& cfg = pool->config();
    if (cfg.max_concurrent_copies <= 0) return {};
    const auto deadline = std::chrono::steady_clock::now() + cfg.acquire_timeout;
    std::unique_lock lock(turn_mutex);
    const bool free = turn_free.wait_until(lock, deadline, [&] {
      auto it = copying.find(table);
      return it == copying.end() || it->second < cfg.max_concurrent_copies;
    });
    if (!free) {
      throw StoreError("timed out after " + std::to_string(cfg.acquire_timeout.count()) +
                           " ms waiting for a turn to write into " + table + " (max_concurrent_copies " +
                           std::to_string(cfg.max_concurrent_copies) + ")",
                       true);
    }
    ++copying[table];
    return {this, table};
  }

  ConnectionPool::Impl& impl() const { return pool->impl(); }
  std::string checkpoint_table() const {
    return sql::ident(pool->config().schema, "schema") + "." + kCheckpointTable;
  }
  // Saves ($1 job_id, $2 backfiller_key, $3 next_token, $4 finished).
  std::string checkpoint_upsert() const {
    return "INSERT INTO " + checkpoint_table() +
           " (job_id, backfiller_key, next_token, finished, updated_at) VALUES ($1, $2, $3, $4, now())"
           " ON CONFLICT (job_id, backfiller_key) DO UPDATE SET next_token = EXCLUDED.next_token,"
           " finished = EXCLUDED.finished, updated_at = EXCLUDED.updated_at";
  }
};

PgReplicaStore::PgReplicaStore(Config config) : PgReplicaStore(std::make_shared<ConnectionPool>(std::move(config))) {}

PgReplicaStore::PgReplicaStore(std::shared_ptr<ConnectionPool> pool) : state_(std::make_unique<State>()) {
  if (!pool) throw InvalidPrecondition("PgReplicaStore needs a connection pool");
  state_->pool = std::move(pool);
}

PgReplicaStore::~PgReplicaStore() = default;

ConnectionPool& PgReplicaStore::pool() const noexcept { return *state_->pool; }

const std::vector<Migration>& PgReplicaStore::migrations() {
  static const std::vector<Migration> steps = {
      {1, "backfill checkpoints",
       "CREATE TABLE IF NOT EXISTS {schema}.webhookdb_backfill_checkpoints ("
       " job_id bigint NOT NULL,"
       " backfiller_key text NOT NULL,"
       " next_token text NOT NULL DEFAULT '',"
       " finished boolean NOT NULL DEFAULT false,"
       " updated_at timestamptz NOT NULL DEFAULT now(),"
       " PRIMARY KEY (job_id, backfiller_key))"},
      // The sweep (deletes.hpp): when each sweeping job began, by the server's clock.
      {2, "sweep runs",
       "CREATE TABLE IF NOT EXISTS {schema}.webhookdb_sweep_runs ("
       " job_id bigint PRIMARY KEY,"
       " table_name text NOT NULL,"
       " mark timestamptz NOT NULL,"
       " created_at timestamptz NOT NULL DEFAULT now())"},
  };
  return steps;
}

void PgReplicaStore::migrate() {
  std::lock_guard lock(state_->migrate_mutex);
  if (state_->migrated) return;
  pg::migrate(*state_->pool, "replica_store", migrations());
  state_->migrated = true;
}

std::string PgReplicaStore::schema_of(const TableSpec& spec) const {
  const auto& cfg = state_->pool->config();
  if (cfg.replica_schema) return *cfg.replica_schema;
  return spec.schema.empty() ? std::string("public") : spec.schema;
}

std::string PgReplicaStore::qualified_name(const TableSpec& spec) const {
  return sql::qualified(schema_of(spec), spec.table);
}

void PgReplicaStore::create_table(const TableSpec& spec) {
  spec.validate();
  const auto indexes = spec.indexes();
  const TableSql t = describe(spec, schema_of(spec));
  std::vector<std::string> defs;
  defs.emplace_back("\"pk\" bigserial PRIMARY KEY");
  defs.push_back(t.qkey + " " + std::string(sql_type(spec.remote_key.type)) + " UNIQUE NOT NULL");
  for (std::size_t i = 0; i < spec.columns.size(); ++i) {
    defs.push_back(t.qcols[i] + " " + std::string(sql_type(spec.columns[i].type)));
  }
  if (spec.enrichment) defs.emplace_back("\"enrichment\" jsonb");
  defs.emplace_back("\"data\" jsonb NOT NULL");
  if (t.deletes) defs.push_back(std::string(kSeenColumn) + " timestamptz NOT NULL DEFAULT now()");
  std::vector<std::string> index_statements;
  for (const auto& idx : indexes) index_statements.push_back(index_sql(spec, idx, t, false));

  auto& impl = state_->impl();
  impl.in_transaction("creating table " + t.qualified, impl.config.retries, [&](pqxx::work& tx) {
    // IF NOT EXISTS is not safe against a concurrent creator: serialise them.
    tx.exec_params("SELECT pg_advisory_xact_lock(hashtext($1)::bigint)", "webhookdb_ddl:" + t.qualified);
    ensure_schema(tx, t);
    check_existing_table(tx, spec, t, indexes);
    // exec_params (the extended protocol) runs exactly one statement: a
    // predicate that smuggled in a second one would fail, not run.
    tx.exec_params("CREATE TABLE IF NOT EXISTS " + t.qualified + " (" + joined(defs) + ")");
    for (const auto& statement : index_statements) tx.exec_params(statement);
    if (t.hard) ensure_tombstones(tx, spec, t);
  });
}

void PgReplicaStore::ensure_all_columns(const TableSpec& spec) {
  spec.validate();
  const auto indexes = spec.indexes();
  const TableSql t = describe(spec, schema_of(spec));
  auto& impl = state_->impl();

  std::optional<std::vector<std::string>> existing =
      impl.autocommit("reading the columns of " + t.qualified, [&](pqxx::nontransaction& tx) {
        std::optional<std::vector<std::string>> out;
        if (!tx.exec_params("SELECT to_regclass($1) IS NOT NULL", t.qualified)[0][0].as<bool>()) return out;
        out.emplace();
        for (const auto& row : tx.exec_params("SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1)"
                                              " AND attnum > 0 AND NOT attisdropped",
                                              t.qualified)) {
          out->push_back(row[0].as<std::string>());
        }
        return out;
      });
  if (!existing) {
    create_table(spec);
    return;
  }
  auto has = [&](const std::string& name) { return std::find(existing->begin(), existing->end(), name) != existing->end(); };

  std::vector<std::size_t> missing;
  for (std::size_t i = 0; i < spec.columns.size(); ++i) {
    if (!has(spec.columns[i].name)) missing.push_back(i);
  }
  std::vector<std::string> adds;
  for (std::size_t i : missing) {
    adds.push_back("ADD COLUMN IF NOT EXISTS " + t.qcols[i] + " " + std::string(sql_type(spec.columns[i].type)));
  }
  if (spec.enrichment && !has("enrichment")) adds.emplace_back("ADD COLUMN IF NOT EXISTS \"enrichment\" jsonb");
  // A table that opts in to deletes later: its rows count as seen when the
  // column is added (a constant default, so no rewrite of the table).
  if (t.deletes && !has("webhookdb_seen_at")) {
    adds.push_back(std::string("ADD COLUMN IF NOT EXISTS ") + kSeenColumn + " timestamptz NOT NULL DEFAULT now()");
  }
  std::vector<std::string> sets;
  for (std::size_t i : missing) sets.push_back(t.qcols[i] + " = " + fill_expr(spec.columns[i]));

  if (!adds.empty()) {
    impl.in_transaction("adding columns to " + t.qualified, impl.config.retries,
                        [&](pqxx::work& tx) { tx.exec_params("ALTER TABLE " + t.qualified + " " + joined(adds)); });
  }
  if (t.hard) {
    impl.in_transaction("creating the tombstones of " + t.qualified, impl.config.retries,
                        [&](pqxx::work& tx) { ensure_tombstones(tx, spec, t); });
  }
  if (!sets.empty()) fill_new_columns(impl, t, sets);

  // Indexes after the UPDATEs, so those do not maintain them.
  impl.autocommit("creating indexes of " + t.qualified, [&](pqxx::nontransaction& tx) {
    const std::string list =
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = to_regclass($1)";
    std::vector<std::string> names;
    for (const auto& row : tx.exec_params(list, t.qualified)) {
      const auto name = row[0].as<std::string>();
      if (!row[1].as<bool>()) {
        // A CREATE INDEX CONCURRENTLY that failed leaves an invalid index behind.
        tx.exec_params("DROP INDEX CONCURRENTLY IF EXISTS " + t.qschema + "." + sql::ident(name, "index"));
      } else {
        names.push_back(name);
      }
    }
    for (const auto& idx : indexes) {
      if (std::find(names.begin(), names.end(), idx.name) != names.end()) continue;
      tx.exec_params(index_sql(spec, idx, t, true));
    }
  });
}

void PgReplicaStore::drop_table(const TableSpec& spec) {
  const std::string q = qualified_name(spec);
  auto& impl = state_->impl();
  impl.in_transaction("dropping table " + q, impl.config.retries, [&](pqxx::work& tx) {
    tx.exec_params("DROP TABLE IF EXISTS " + q);
    // A table that had hard deletes under another spec leaves its tombstones
    // and seen set too.
    tx.exec_params("DROP TABLE IF EXISTS " + tombstone_table(spec));
    tx.exec_params("DROP TABLE IF EXISTS " + sql::qualified(schema_of(spec), seen_set_name(spec.table)));
  });
}

std::string PgReplicaStore::tombstone_table(const TableSpec& spec) const {
  return sql::qualified(schema_of(spec), tombstone_name(spec.table));
}

UpsertResult PgReplicaStore::upsert(const TableSpec& spec, std::span<const Row> rows,
                                    const UpsertOptions& options) {
  UpsertResult result;
  result.changed.assign(rows.size(), false);
  if (rows.empty() && !options.checkpoint) return result;
  spec.validate();
  const TableSql t = describe(spec, schema_of(spec));
  BatchWriter writer(spec, t, rows, options.apply_update_rule);
  if (options.seen == SeenMarks::every_row) writer.mark_every_row_seen();
  if (options.durable_later) writer.durable_later();
  if (options.checkpoint) {
    migrate();
    const Checkpoint& cp = *options.checkpoint;
    std::string key = checked_text(cp.backfiller_key, "checkpoint key");
    std::string token = checked_text(cp.next_token, "checkpoint token");
    writer.save_checkpoint(
        {state_->checkpoint_upsert(), cp.job_id, std::move(key), std::move(token), cp.finished});
  }
  const CopyGuess guess = writer.size() > 0 ? state_->guess(t.qualified) : CopyGuess::ask;
  if (writer.size() > 0 && state_->written_recently(t.qualified)) writer.prepare_small_chunks();
  writer.choose(options.method, guess, state_->pool->config());
  // Taken before a connection, so a batch waiting for its turn holds none.
  const State::Turn turn = writer.copies() ? state_->take_turn(t.qualified) : State::Turn();
  const std::vector<std::size_t> written = writer.write(state_->impl());
  if (writer.copies()) state_->set_guess(t.qualified, writer.next_guess());
  for (std::size_t position : written) {
    if (position < writer.size()) result.changed[writer.source(position)] = true;
  }
  return result;
}

std::optional<Row> PgReplicaStore::find(const TableSpec& spec, const json& key) {
  const TableSql t = describe(spec, schema_of(spec));
  std::string encoded;
  try {
    if (!values::encode(t.key_type, key, encoded)) throw InvalidInput("remote key is null");
  } catch (const InvalidInput& e) {
    throw InvalidInput(e.what(), "remote key " + key_repr(key));
  }
  const std::string statement = "SELECT " + select_list(spec, t) + " FROM " + t.qualified + " WHERE " + t.qkey +
                                " = $1::" + std::string(sql_type(t.key_type));
  return state_->impl().autocommit("reading a row of " + t.qualified, [&](pqxx::nontransaction& tx) {
    std::optional<Row> out;
    const auto r = tx.exec_params(statement, encoded);
    if (!r.empty()) out = decode_row(spec, r[0]);
    return out;
  });
}

std::size_t PgReplicaStore::count(const TableSpec& spec) {
  const std::string q = qualified_name(spec);
  return state_->impl().autocommit("counting rows of " + q, [&](pqxx::nontransaction& tx) {
    return tx.exec_params("SELECT count(*) FROM " + q)[0][0].as<std::size_t>();
  });
}

void PgReplicaStore::for_each(const TableSpec& spec, const std::function<void(const Row&)>& visit) {
  const TableSql t = describe(spec, schema_of(spec));
  const std::string base = "SELECT " + select_list(spec, t) + " FROM " + t.qualified;
  const std::string order = " ORDER BY " + t.qkey + " LIMIT " + std::to_string(kPageRows);
  const std::string after = base + " WHERE " + t.qkey + " > $1::" + std::string(sql_type(t.key_type)) + order;
  std::optional<std::string> last;
  while (true) {
    std::vector<Row> page;
    state_->impl().autocommit("reading rows of " + t.qualified, [&](pqxx::nontransaction& tx) {
      const pqxx::result r = last ? tx.exec_params(after, *last) : tx.exec_params(base + order);
      page.reserve(static_cast<std::size_t>(r.size()));
      for (const auto& row : r) {
        page.push_back(decode_row(spec, row));
        last = row[row.size() - 1].as<std::string>();
      }
    });
    for (const auto& row : page) visit(row);
    if (page.size() < kPageRows) return;
  }
}

std::map<std::string, Checkpoint> PgReplicaStore::load_checkpoints(std::int64_t job_id) {
  migrate();
  const std::string table = state_->checkpoint_table();
  return state_->impl().autocommit("loading checkpoints", [&](pqxx::nontransaction& tx) {
    std::map<std::string, Checkpoint> out;
    for (const auto& row : tx.exec_params(
             "SELECT backfiller_key, next_token, finished FROM " + table + " WHERE job_id = $1", job_id)) {
      Checkpoint cp;
      cp.job_id = job_id;
      cp.backfiller_key = row[0].as<std::string>();
      cp.next_token = row[1].as<std::string>();
      cp.finished = row[2].as<bool>();
      out.emplace(cp.backfiller_key, cp);
    }
    return out;
  });
}

void PgReplicaStore::save_checkpoint(const Checkpoint& checkpoint) {
  migrate();
  const std::string key = checked_text(checkpoint.backfiller_key, "checkpoint key");
  const std::string token = checked_text(checkpoint.next_token, "checkpoint token");
  const std::string statement = state_->checkpoint_upsert();
  auto& impl = state_->impl();
  impl.in_transaction("saving a checkpoint", impl.config.retries, [&](pqxx::work& tx) {
    // Safe without waiting for the disk (see Config::async_checkpointed_commits):
    // the rows it vouches for were committed earlier, so their WAL is flushed
    // no later than its own.
    if (impl.config.async_checkpointed_commits) tx.exec("SET LOCAL synchronous_commit = off");
    tx.exec_params(statement, checkpoint.job_id, key, token, checkpoint.finished);
  });
}

void PgReplicaStore::clear_checkpoints(std::int64_t job_id) {
  migrate();
  const std::string table = state_->checkpoint_table();
  auto& impl = state_->impl();
  impl.in_transaction("clearing checkpoints", impl.config.retries, [&](pqxx::work& tx) {
    tx.exec_params("DELETE FROM " + table + " WHERE job_id = $1", job_id);
  });
}

bool PgReplicaStore::with_advisory_lock(const TableSpec& spec, std::int64_t key, const std::function<void()>& fn) {
  const std::int32_t objid = advisory_lock_key(key);  // InvalidInput before any connection
  const std::string q = qualified_name(spec);
  auto& impl = state_->impl();
  // A connection of its own, closed afterwards: a session lock never stays
  // behind on a pooled connection (WebhookDB does the same).
  std::unique_ptr<pqxx::connection> conn = impl.connect();
  std::int32_t classid = 0;
  bool acquired = false;
  try {
    pqxx::nontransaction tx(*conn);
    const auto r = tx.exec_params("SELECT to_regclass($1)::oid", q);
    if (r[0][0].is_null()) throw InvalidPrecondition("table " + q + " does not exist");
    classid = advisory_lock_namespace(r[0][0].as<std::uint32_t>());
    acquired = tx.exec_params("SELECT pg_try_advisory_lock($1::integer, $2::integer)", classid, objid)[0][0].as<bool>();
  } catch (const webhookdb::Error&) {
    throw;
  } catch (...) {
    impl.translate("taking an advisory lock on " + q, std::current_exception());
  }
  if (!acquired) return false;
  // Closing the connection releases the lock even when the unlock fails.
  struct Unlock {
    pqxx::connection& conn;
    std::int32_t classid;
    std::int32_t objid;
    ~Unlock() {
      try {
        pqxx::nontransaction tx(conn);
        tx.exec_params("SELECT pg_advisory_unlock($1::integer, $2::integer)", classid, objid);
      } catch (...) {
      }
    }
  } unlock{*conn, classid, objid};
  fn();
  return true;
}

bool PgReplicaStore::avoid_writes(const TableSpec& spec) {
  const std::string q = qualified_name(spec);
  return state_->impl().autocommit("checking locks on " + q, [&](pqxx::nontransaction& tx) {
    return tx
        .exec_params(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'relation'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND relation = to_regclass($1) AND pid <> pg_backend_pid()"
            " AND mode IN ('ShareUpdateExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'))",
            q)[0][0]
        .as<bool>();
  });
}

// --- the sweep (deletes.hpp) ---

void PgReplicaStore::begin_sweep_run(const TableSpec& spec, const SweepRun& run) {
  migrate();
  const std::string runs = sql::ident(state_->pool->config().schema, "schema") + "." + kSweepRunsTable;
  const TableSql t = describe(spec, schema_of(spec));
  const std::string& q = t.qualified;
  auto& impl = state_->impl();
  impl.in_transaction("beginning sweep run " + std::to_string(run.job_id) + " on " + q, impl.config.retries,
                      [&](pqxx::work& tx) {
                        // DO NOTHING: a resumed job keeps its first run's mark and seen set.
                        const auto first = tx.exec_params(
                            "INSERT INTO " + runs +
                                " (job_id, table_name, mark) VALUES ($1, $2,"
                                " now() - make_interval(secs => $3)) ON CONFLICT (job_id) DO NOTHING RETURNING 1",
                            run.job_id, q, static_cast<double>(run.margin.count()));
                        if (!t.deletes) return;
                        tx.exec_params("CREATE TABLE IF NOT EXISTS " + t.qseen + " (\"key\" " +
                                       std::string(sql_type(t.key_type)) + " PRIMARY KEY)");
                        // One sweeping backfill of a table at a time (one per integration):
                        // a new job starts from an empty set.
                        if (!first.empty()) tx.exec_params("TRUNCATE " + t.qseen);
                      });
}

SweepResult PgReplicaStore::sweep(const TableSpec& spec, const SweepRun& run) {
  SweepResult result;
  if (spec.deletes == DeleteMode::none) return result;
  migrate();
  const TableSql t = describe(spec, schema_of(spec));
  const std::string runs = sql::ident(state_->pool->config().schema, "schema") + "." + kSweepRunsTable;
  const std::string qdeleted = sql::ident(kDeletedAtColumn, "column");
  // Seen: written since the mark, or listed by the run (its seen set).
  const std::string unseen = "\"pk\" > $1 AND \"pk\" <= $2 AND " + qdeleted + " IS NULL AND " + kSeenColumn +
                             " < (SELECT mark FROM " + runs + " WHERE job_id = $3) AND NOT EXISTS (SELECT 1 FROM " +
                             t.qseen + " webhookdb_s WHERE webhookdb_s.\"key\" = " + t.qualified + "." + t.qkey + ")";
  // Soft: the row stays, marked. Hard: it moves into the tombstones.
  const std::string statement = t.hard ? tombstones_bury(t, unseen, BuriedAt::now)
                                       : "UPDATE " + t.qualified + " SET " + qdeleted + " = now() WHERE " + unseen;
  const auto chunk = static_cast<std::int64_t>(std::max<std::size_t>(1, run.batch_rows));
  auto& impl = state_->impl();
  impl.autocommit("sweeping " + t.qualified, [&](pqxx::nontransaction& tx) {
    const auto mark = tx.exec_params("SELECT 1 FROM " + runs + " WHERE job_id = $1 AND table_name = $2", run.job_id,
                                     t.qualified);
    if (mark.empty()) {
      throw InvalidPrecondition("no sweep run of job " + std::to_string(run.job_id) + " on " + t.qualified +
                                " (begin_sweep_run first)");
    }
    // The highest pk from the sequence, without scanning; rows inserted
    // later were written after the mark and are kept anyway.
    const auto r = tx.exec_params("SELECT pg_sequence_last_value(pg_get_serial_sequence($1, 'pk')::regclass)",
                                  t.qualified);
    const std::int64_t max_pk = r[0][0].is_null() ? 0 : r[0][0].as<std::int64_t>();
    // One statement per pk range, each its own transaction: a webhook
    // writing one of its rows waits for one batch at most, and a webhook that
    // wrote or restored a row since the mark (committed first) is re-checked
    // by the statement's WHERE and left alone.
    for (std::int64_t lower = 0; lower < max_pk; lower += chunk) {
      result.swept += static_cast<std::size_t>(tx.exec_params(statement, lower, lower + chunk, run.job_id).affected_rows());
      ++result.batches;
    }
  });
  if (t.hard && run.tombstone_retention.count() > 0) {
    result.pruned = prune_tombstones(spec, run.tombstone_retention, run.batch_rows);
  }
  return result;
}

std::size_t PgReplicaStore::prune_tombstones(const TableSpec& spec, std::chrono::hours retention,
                                             std::size_t batch_rows) {
  if (spec.deletes != DeleteMode::hard) return 0;
  if (retention.count() <= 0) {
    throw InvalidPrecondition("pruning the tombstones of " + qualified_name(spec) +
                              " needs a retention of at least one hour");
  }
  const TableSql t = describe(spec, schema_of(spec));
  // By ctid in batches, each its own transaction: a write restoring one of
  // these keys waits for one batch at most. No index on deleted_at: the
  // tombstones are scanned once per batch, like the sweep scans its table.
  const std::string statement = "DELETE FROM " + t.qtomb + " WHERE ctid = ANY(ARRAY(SELECT ctid FROM " + t.qtomb +
                                " WHERE " + sql::ident(kDeletedAtColumn, "column") +
                                " < now() - make_interval(hours => $1) LIMIT $2))";
  const auto limit = static_cast<std::int64_t>(std::max<std::size_t>(1, batch_rows));
  const auto hours = static_cast<std::int32_t>(std::min<std::chrono::hours::rep>(retention.count(), std::numeric_limits<std::int32_t>::max()));
  std::size_t pruned = 0;
  state_->impl().autocommit("pruning the tombstones of " + t.qualified, [&](pqxx::nontransaction& tx) {
    if (tx.exec_params("SELECT to_regclass($1) IS NULL", t.qtomb)[0][0].as<bool>()) return;
    while (true) {
      const auto n = static_cast<std::size_t>(tx.exec_params(statement, hours, limit).affected_rows());
      pruned += n;
      if (n < static_cast<std::size_t>(limit)) break;
    }
  });
  return pruned;
}

void PgReplicaStore::end_sweep_run(std::int64_t job_id) {
  migrate();
  const std::string runs = sql::ident(state_->pool->config().schema, "schema") + "." + kSweepRunsTable;
  auto& impl = state_->impl();
  impl.in_transaction("ending sweep run " + std::to_string(job_id), impl.config.retries, [&](pqxx::work& tx) {
    tx.exec_params("DELETE FROM " + runs + " WHERE job_id = $1", job_id);
  });
}

}  // namespace webhookdb::pg
