#include "webhookdb/pg/migrations.hpp"

#include <algorithm>
#include <set>

#include "pg/pool_impl.hpp"
#include "pg/sql.hpp"

namespace webhookdb::pg {
namespace {

std::string migrations_table(const std::string& quoted_schema) {
  return quoted_schema + ".webhookdb_schema_migrations";
}

}  // namespace

int migrate(ConnectionPool& pool, const std::string& component, const std::vector<Migration>& steps) {
  if (component.empty()) throw InvalidPrecondition("a migration component needs a name");
  std::vector<const Migration*> ordered;
  std::set<int> versions;
  for (const auto& step : steps) {
    if (step.version <= 0) {
      throw InvalidPrecondition("migration '" + step.name + "' of " + component + " has version " +
                                std::to_string(step.version) + "; versions start at 1");
    }
    if (!versions.insert(step.version).second) {
      throw InvalidPrecondition("migration version " + std::to_string(step.version) + " of " + component +
                                " appears twice");
    }
    ordered.push_back(&step);
  }
  std::sort(ordered.begin(), ordered.end(), [](const Migration* a, const Migration* b) { return a->version < b->version; });

  auto& impl = pool.impl();
  const std::string schema = impl.config.schema;
  const std::string qschema = sql::ident(schema, "schema");
  const std::string table = migrations_table(qschema);
  return impl.in_transaction("migrating " + component, impl.config.retries, [&](pqxx::work& tx) {
    // Serialises migrators of this schema, across processes too.
    tx.exec_params("SELECT pg_advisory_xact_lock(hashtext($1)::bigint)", "webhookdb_migrations:" + schema);
    if (tx.exec_params("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema).empty()) {
      tx.exec("CREATE SCHEMA " + qschema);
    }
    if (tx.exec_params("SELECT to_regclass($1) IS NOT NULL", table)[0][0].as<bool>() == false) {
      tx.exec("CREATE TABLE " + table +
              " (component text NOT NULL, version integer NOT NULL, name text NOT NULL,"
              " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (component, version))");
    }
    std::set<int> applied;
    for (const auto& row : tx.exec_params("SELECT version FROM " + table + " WHERE component = $1", component)) {
      applied.insert(row[0].as<int>());
    }
    int ran = 0;
    for (const Migration* step : ordered) {
      if (applied.count(step->version) != 0) continue;
      tx.exec(sql::replace_all(step->sql, "{schema}", qschema));
      tx.exec_params("INSERT INTO " + table + " (component, version, name) VALUES ($1, $2, $3)", component,
                     step->version, step->name);
      ++ran;
    }
    return ran;
  });
}

std::vector<int> applied_migrations(ConnectionPool& pool, const std::string& component) {
  auto& impl = pool.impl();
  const std::string table = migrations_table(sql::ident(impl.config.schema, "schema"));
  return impl.autocommit("reading applied migrations", [&](pqxx::nontransaction& tx) {
    std::vector<int> out;
    if (!tx.exec_params("SELECT to_regclass($1) IS NOT NULL", table)[0][0].as<bool>()) return out;
    for (const auto& row :
         tx.exec_params("SELECT version FROM " + table + " WHERE component = $1 ORDER BY version", component)) {
      out.push_back(row[0].as<int>());
    }
    return out;
  });
}

}  // namespace webhookdb::pg
