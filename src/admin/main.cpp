// webhookdb: the admin CLI (admin.hpp).
#include <iostream>
#include <string>
#include <vector>

#include "admin/admin.hpp"

int main(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return webhookdb::admin::run(args, std::cout, std::cerr);
}
