/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Routing requests to ws connections when the module is not preloaded.
 *
 * Preloaded, the module's nta_outgoing_tcreate()/nta_outgoing_mcreate()/nta_leg_tcreate()/
 * nta_leg_destroy() (tport-ws-preload.c) come first in the process's symbol lookup and catch
 * every call, NUA's included (libsofia-sip-ua calls its own exported functions through its
 * PLT). Loaded with GModule, or linked after libsofia-sip-ua, they come after it and catch
 * nothing. So here the module points the call slots themselves at its functions: the GOT
 * entries (JUMP_SLOT, and GLOB_DAT for -fno-plt code) that name these symbols (and
 * tport_by_name(), for NTA's own ACKs and CANCELs, and nta_incoming_mreply(), for the Contact
 * of NUA's responses) in every
 * object loaded at that time, libsofia-sip-ua (NUA's calls to NTA) and the program among them,
 * except the module itself. Pages under RELRO are made writable for the write and read-only
 * again. The functions the module forwards to are libsofia-sip-ua's, found before the slots
 * change. Objects loaded later are not changed. */
#define _GNU_SOURCE 1

#include "tport-ws-hook.h"
#include "tport-ws-preload.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sofia-sip/nta.h>
#include <sofia-sip/su_log.h>

#include <sofia-ws/sofia-ws.h>

extern su_log_t tport_ws_log[];
#define SU_LOG tport_ws_log
#include <sofia-sip/su_debug.h>

#if defined(__x86_64__)
#define HOOK_JUMP_SLOT R_X86_64_JUMP_SLOT
#define HOOK_GLOB_DAT R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define HOOK_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define HOOK_GLOB_DAT R_AARCH64_GLOB_DAT
#elif defined(__i386__)
#define HOOK_JUMP_SLOT R_386_JMP_SLOT
#define HOOK_GLOB_DAT R_386_GLOB_DAT
#endif

#if defined(HOOK_JUMP_SLOT) && defined(__ELF__)

#if __ELF_NATIVE_CLASS == 64
#define HOOK_R_SYM ELF64_R_SYM
#define HOOK_R_TYPE ELF64_R_TYPE
#else
#define HOOK_R_SYM ELF32_R_SYM
#define HOOK_R_TYPE ELF32_R_TYPE
#endif

typedef struct {
  const char *name;
  gpointer replacement;           /* the module's function */
  gpointer original;              /* libsofia-sip-ua's */
} Hook;

typedef struct {
  Hook *hooks;
  gsize n_hooks;
  uintptr_t self_base;            /* the module's load address: its slots stay */
  guint patched;                  /* slots changed */
  guint in_sofia;                 /* of which in libsofia-sip-ua */
  const char *failure;
} Walk;

static uintptr_t
dyn_pointer (struct dl_phdr_info *info,
             ElfW(Addr)           value)
{
  /* glibc relocates the d_ptr values of loaded objects in place on most architectures; the
   * others keep them relative to the load address. */
  return value >= info->dlpi_addr ? (uintptr_t) value : (uintptr_t) (info->dlpi_addr + value);
}

static gboolean
in_relro (struct dl_phdr_info *info,
          uintptr_t            address)
{
  for (int i = 0; i < info->dlpi_phnum; i++)
    {
      const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

      if (ph->p_type == PT_GNU_RELRO &&
          address >= info->dlpi_addr + ph->p_vaddr &&
          address < info->dlpi_addr + ph->p_vaddr + ph->p_memsz)
        return TRUE;
    }
  return FALSE;
}

static gboolean
write_slot (struct dl_phdr_info *info,
            gpointer            *slot,
            gpointer             value)
{
  long page_size = sysconf (_SC_PAGESIZE);
  uintptr_t page = (uintptr_t) slot & ~((uintptr_t) page_size - 1);
  gboolean relro = in_relro (info, (uintptr_t) slot);

  if (*slot == value)
    return TRUE;
  if (relro && mprotect ((void *) page, page_size, PROT_READ | PROT_WRITE) != 0)
    return FALSE;
  __atomic_store_n (slot, value, __ATOMIC_RELEASE);
  if (relro)
    mprotect ((void *) page, page_size, PROT_READ);
  return TRUE;
}

static void
patch_table (struct dl_phdr_info *info,
             Walk                *walk,
             const ElfW(Sym)     *symtab,
             const char          *strtab,
             uintptr_t            table,
             gsize                size,
             gboolean             rela,
             gboolean             is_sofia)
{
  gsize entry = rela ? sizeof (ElfW(Rela)) : sizeof (ElfW(Rel));

  for (gsize off = 0; off + entry <= size; off += entry)
    {
      const ElfW(Rel) *rel = (const ElfW(Rel) *) (table + off);
      unsigned type = HOOK_R_TYPE (rel->r_info);
      const char *name;

      if (type != HOOK_JUMP_SLOT && type != HOOK_GLOB_DAT)
        continue;
      name = strtab + symtab[HOOK_R_SYM (rel->r_info)].st_name;
      for (gsize h = 0; h < walk->n_hooks; h++)
        {
          gpointer *slot;

          if (strcmp (name, walk->hooks[h].name) != 0)
            continue;
          slot = (gpointer *) (info->dlpi_addr + rel->r_offset);
          /* A lazily bound slot still points into the PLT; a bound one at the original. */
          if (!write_slot (info, slot, walk->hooks[h].replacement))
            {
              walk->failure = "a call slot could not be made writable (mprotect)";
              return;
            }
          walk->patched++;
          if (is_sofia)
            walk->in_sofia++;
        }
    }
}

static int
patch_object (struct dl_phdr_info *info,
              size_t               size,
              void                *data)
{
  Walk *walk = data;
  const ElfW(Dyn) *dyn = NULL;
  const ElfW(Sym) *symtab = NULL;
  const char *strtab = NULL;
  uintptr_t jmprel = 0, rel = 0;
  gsize jmprel_size = 0, rel_size = 0;
  gboolean jmprel_rela = TRUE, rela = FALSE;
  gboolean is_sofia;

  if (info->dlpi_addr == walk->self_base && walk->self_base != 0)
    return 0;
  for (int i = 0; i < info->dlpi_phnum; i++)
    if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
      dyn = (const ElfW(Dyn) *) (info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
  if (dyn == NULL)
    return 0;
  /* The vDSO has no relocations of interest, and its d_ptr values are not relocated. */
  if (info->dlpi_name != NULL && strstr (info->dlpi_name, "linux-vdso") != NULL)
    return 0;

  for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++)
    switch (d->d_tag)
      {
      case DT_SYMTAB: symtab = (const ElfW(Sym) *) dyn_pointer (info, d->d_un.d_ptr); break;
      case DT_STRTAB: strtab = (const char *) dyn_pointer (info, d->d_un.d_ptr); break;
      case DT_JMPREL: jmprel = dyn_pointer (info, d->d_un.d_ptr); break;
      case DT_PLTRELSZ: jmprel_size = d->d_un.d_val; break;
      case DT_PLTREL: jmprel_rela = d->d_un.d_val == DT_RELA; break;
      case DT_RELA: rel = dyn_pointer (info, d->d_un.d_ptr); rela = TRUE; break;
      case DT_RELASZ: rel_size = d->d_un.d_val; break;
      case DT_REL: rel = dyn_pointer (info, d->d_un.d_ptr); rela = FALSE; break;
      case DT_RELSZ: rel_size = d->d_un.d_val; break;
      default: break;
      }
  if (symtab == NULL || strtab == NULL)
    return 0;

  is_sofia = info->dlpi_name != NULL && strstr (info->dlpi_name, "libsofia-sip-ua.so") != NULL;
  if (jmprel != 0)
    patch_table (info, walk, symtab, strtab, jmprel, jmprel_size, jmprel_rela, is_sofia);
  if (rel != 0 && walk->failure == NULL)
    patch_table (info, walk, symtab, strtab, rel, rel_size, rela, is_sofia);
  return walk->failure != NULL;
}

gboolean
tport_ws_hook_install (GError **error)
{
  static gsize once = 0;
  static char *refusal = NULL;

  if (g_once_init_enter (&once))
    {
      Hook hooks[] = {
        { "nta_incoming_mreply", (gpointer) tport_ws_hooked_incoming_mreply, NULL },
        { "tport_by_name", (gpointer) tport_ws_hooked_by_name, NULL },
        { "nta_leg_tcreate", (gpointer) tport_ws_hooked_leg_tcreate, NULL },
        { "nta_leg_destroy", (gpointer) tport_ws_hooked_leg_destroy, NULL },
        { "nta_outgoing_tcreate", (gpointer) tport_ws_hooked_outgoing_tcreate, NULL },
        { "nta_outgoing_mcreate", (gpointer) tport_ws_hooked_outgoing_mcreate, NULL },
      };
      Walk walk = { hooks, G_N_ELEMENTS (hooks), 0, 0, 0, NULL };
      Dl_info self;
      gboolean preloaded = TRUE;

      /* The definitions the program sees first: the module's when it is preloaded, and then
       * there is nothing to do. */
      for (gsize i = 0; i < G_N_ELEMENTS (hooks); i++)
        {
          hooks[i].original = dlsym (RTLD_DEFAULT, hooks[i].name);
          if (hooks[i].original != hooks[i].replacement)
            preloaded = FALSE;
          if (hooks[i].original == NULL)
            refusal = g_strdup_printf ("%s is not in the process", hooks[i].name);
        }
      if (refusal == NULL && !preloaded)
        {
          if (dladdr ((void *) tport_ws_hook_install, &self) == 0)
            refusal = g_strdup ("the module cannot find where it is loaded");
          else
            {
              walk.self_base = (uintptr_t) self.dli_fbase;
              tport_ws_preload_set_next (hooks[0].original, hooks[1].original,
                                         hooks[2].original, hooks[3].original,
                                         hooks[4].original, hooks[5].original);
              dl_iterate_phdr (patch_object, &walk);
              if (walk.failure != NULL)
                refusal = g_strdup (walk.failure);
              else if (walk.in_sofia == 0)
                refusal = g_strdup ("libsofia-sip-ua does not call nta_outgoing_mcreate() "
                                    "through its PLT, so NUA's requests cannot be routed");
              else
                SU_DEBUG_5 (("tport_ws: %u call slots routed through the module (%u in "
                             "libsofia-sip-ua)\n", walk.patched, walk.in_sofia));
            }
        }
      if (refusal != NULL)
        {
          char *full = g_strdup_printf ("Requests cannot be routed to ws connections: %s",
                                        refusal);

          g_free (refusal);
          refusal = full;
          SU_DEBUG_3 (("tport_ws: %s\n", refusal));
        }
      g_once_init_leave (&once, 1);
    }
  if (refusal != NULL)
    {
      g_set_error_literal (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_FAILED, refusal);
      return FALSE;
    }
  return TRUE;
}

#else

gboolean
tport_ws_hook_install (GError **error)
{
  g_set_error_literal (error, SOFIA_WS_ERROR, SOFIA_WS_ERROR_FAILED,
                       "Requests cannot be routed to ws connections: this architecture's call "
                       "slots are unknown to the module; preload it (LD_PRELOAD) instead");
  return FALSE;
}

#endif
