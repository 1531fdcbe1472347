<?php

namespace Soa;

/** etcd could not be read and no usable cached list of the service exists. */
class DiscoveryError extends SoaException
{
}
