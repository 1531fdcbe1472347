<?php

namespace Soa;

/** The base of the plugin's own errors. */
class SoaException extends \RuntimeException
{
}
