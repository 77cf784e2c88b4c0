// Skips a KVM test, with the reason printed, where /dev/kvm cannot be opened.
#pragma once

#include <gtest/gtest.h>

#include "vm/kvm/kvm_vm.h"

#define TERN_SKIP_WITHOUT_KVM()                                           \
  do {                                                                    \
    if (std::string why = ::tern::kvm_unavailable_reason(); !why.empty()) \
      GTEST_SKIP() << "no KVM: " << why;                                  \
  } while (0)
