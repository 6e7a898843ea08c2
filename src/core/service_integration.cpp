#include "webhookdb/service_integration.hpp"

#include <sys/random.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "webhookdb/errors.hpp"

namespace webhookdb {
namespace {

// Fills `out` from the kernel's CSPRNG. getrandom(2) may return fewer bytes
// than asked or be interrupted by a signal: loop. Any other failure (ENOSYS on
// a pre-3.17 kernel, a seccomp filter) is fatal for the caller: an id must
// never fall back to something guessable.
void os_random_bytes(unsigned char* out, std::size_t size) {
  std::size_t filled = 0;
  while (filled < size) {
    const ssize_t got = ::getrandom(out + filled, size - filled, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw InvariantViolation(std::string("getrandom failed: ") + std::strerror(errno));
    }
    filled += static_cast<std::size_t>(got);
  }
}

}  // namespace

std::string new_opaque_id(std::string_view prefix) {
  static constexpr std::string_view alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
  // Each id is drawn afresh from the kernel: no state in the process, so a
  // forked child never repeats its parent, and nothing seeds from 32 bits
  // (mt19937_64 from random_device did both).
  // 252 = 7 * 36: bytes from 252 up are dropped so every character is
  // equally likely.
  constexpr unsigned kUnbiased = 252;
  std::string out(prefix);
  out += '_';
  std::array<unsigned char, 64> bytes{};
  std::size_t used = bytes.size();
  for (std::size_t chars = 0; chars < kOpaqueIdRandomChars;) {
    if (used == bytes.size()) {
      os_random_bytes(bytes.data(), bytes.size());
      used = 0;
    }
    const unsigned b = bytes[used++];
    if (b >= kUnbiased) continue;
    out += alphabet[b % alphabet.size()];
    ++chars;
  }
  return out;
}

void validate_table_name(std::string_view name) {
  // Empty: the integration has no table (yet); create_table refuses it.
  if (name.empty()) return;
  // PostgreSQL cuts longer identifiers to 63 bytes without an error, so two
  // long names could meet in one table.
  if (name.size() > kMaxTableNameBytes) {
    throw InvalidInput("table name is " + std::to_string(name.size()) + " bytes, more than PostgreSQL's 63",
                       "service integration table name");
  }
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      throw InvalidInput("table name contains a control character (byte " + std::to_string(u) + ")",
                         "service integration table name");
    }
  }
  if (name.find_first_not_of(" ") == std::string_view::npos) {
    throw InvalidInput("table name is only spaces", "service integration table name");
  }
}

}  // namespace webhookdb
