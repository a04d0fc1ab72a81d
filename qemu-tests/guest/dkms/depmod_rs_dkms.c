// SPDX-License-Identifier: GPL-2.0
/*
 * The module DKMS builds and installs in the caller tests (qemu-tests/src/callers/dkms.rs). It
 * needs a symbol of another module (libcrc32c's crc32c), exports one and has an alias, so that
 * modules.dep, modules.symbols and modules.alias and their tries all change when it comes and
 * goes.
 */
#include <linux/crc32c.h>
#include <linux/module.h>

u32 depmod_rs_dkms_crc(const void *data, unsigned int len)
{
	return crc32c(0, data, len);
}
EXPORT_SYMBOL_GPL(depmod_rs_dkms_crc);

static int __init depmod_rs_dkms_init(void)
{
	return 0;
}
module_init(depmod_rs_dkms_init);

static void __exit depmod_rs_dkms_exit(void)
{
}
module_exit(depmod_rs_dkms_exit);

MODULE_ALIAS("depmod-rs-dkms-test");
MODULE_DESCRIPTION("depmod-rs: the module DKMS builds in the caller tests");
MODULE_LICENSE("GPL");
