<?php

namespace Soa;

/** An option has a value the plugin cannot use; the message names the option. */
final class ConfigError extends SoaException
{
}
