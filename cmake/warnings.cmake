# SPDX-License-Identifier: Apache-2.0
# Warnings every target of ours gets. CI turns them into errors (SLUICE_WERROR).
set(SLUICE_WARNINGS -Wall -Wextra -Wconversion -Wsign-conversion -Wshadow -Wnon-virtual-dtor
    -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough)
# Clang proves the locking annotated with base/thread_annotations.h; a violation fails
# every clang build (the fuzz preset), not only CI's.
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  list(APPEND SLUICE_WARNINGS -Wthread-safety -Werror=thread-safety)
endif()
if(SLUICE_WERROR)
  list(APPEND SLUICE_WARNINGS -Werror)
endif()
